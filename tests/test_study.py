"""Study files: the whole file is checked against its schema before anything runs."""

from __future__ import annotations

import re

import pytest

import samembed
from samembed.study import load_study

GOOD = """
dataset = "eurosat"
[[encoders]]
encoder = "sam"
[sweep]
heads = ["linear", "knn"]
splits = [0.2, 0.5]
seeds = 3
"""


def _run(tmp_path, text: str | bytes, **options):
    path = tmp_path / "study.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(samembed.SamembedError) as err:
        samembed.run_study(path, cache_dir=tmp_path / "cache", runs_dir=tmp_path / "runs", device="cpu",
                           progress=False, **options)
    message = str(err.value)
    assert "\n" not in message and len(message) < 1500, message
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()  # nothing ran
    return message


@pytest.mark.parametrize("change, expected", [
    (("seeds = 3", 'seeds = "3"'), r'seeds must be a number of seeds .*, not "3" \(a string\)'),
    (("seeds = 3", "seeds = 0"), "seeds must be a number of seeds"),
    (("seeds = 3", "seeds = [0, -1]"), "seeds must be"),
    (("seeds = 3", "seeds = 2.5"), "seeds must be"),
    (('heads = ["linear", "knn"]', 'heads = ["linear", "lineer"]'), r'heads must be a list of which each is a known '
                                                                    r'head \(.*linear.*\); "lineer" \(a string\) is not'),
    (('heads = ["linear", "knn"]', 'heads = "linear"'), 'heads must be a non-empty list, not "linear"'),
    (("splits = [0.2, 0.5]", "splits = [0.2, 1.5]"), "splits must be a list of which each is a validation fraction"),
    (("splits = [0.2, 0.5]", "splits = 0.2"), "splits must be a non-empty list, not 0.2"),
    (("splits = [0.2, 0.5]", 'splits = ["standrd"]'), "splits must be"),
    (("splits = [0.2, 0.5]", "shots = [0]"), "shots must be a list of which each is a whole number >= 1"),
    (("splits = [0.2, 0.5]", "splits = [0.2]\nshots = [5]"), "both splits and shots"),
    (('encoder = "sam"', 'encoder = "samm"'), r'encoder must be a known encoder \(.*sam.*\), not "samm"'),
    (('encoder = "sam"', 'encoder = "vgg19"\nmodel = "imagnet"'), r"#1 model must be one of vgg19's models "
                                                                 r'\(imagenet, random\), not "imagnet"'),
    (('encoder = "sam"', 'encoder = "dinov3"\nmodel = "vitl16-sat-random"'), None),
    (('encoder = "sam"', 'encoder = "sam"\nimg_size = "1024"'), 'img_size must be a whole number >= 1, not "1024"'),
    (('encoder = "sam"', 'encoder = "sam"\nworkers = -1'), "workers must be a whole number >= 0, not -1"),
    (('encoder = "sam"', 'encoder = "sam"\nprompt_features = "yes"'), "prompt_features must be true or false"),
    (("seeds = 3", "seeds = 3\nlr = -0.1"), "lr must be a number > 0, not -0.1"),
    (("seeds = 3", "seeds = 3\nepochs = 0"), "epochs must be a whole number >= 1"),
    (('dataset = "eurosat"', 'dataset = "eurosatt"'), "dataset must be a known dataset"),
    (('dataset = "eurosat"', 'dataset = "eurosat"\nname = "my study"'), "name must be a name of letters"),
    (('dataset = "eurosat"', 'dataset = "eurosat"\ndownload = 1'), "download must be true or false"),
])
def test_every_value_is_checked_before_anything_runs(tmp_path, eurosat_dir, tiny_checkpoint, change, expected):
    text = GOOD.replace(*change).replace('encoder = "sam"', f'encoder = "sam"\ncheckpoint = "{tiny_checkpoint}"', 1)
    assert text != GOOD
    if expected is None:  # a right value: the schema lets it through
        path = tmp_path / "study.toml"
        path.write_text(text)
        assert load_study(path)
        return
    message = _run(tmp_path, text, data_dir=eurosat_dir)
    assert re.search(expected, message), message


def test_several_problems_are_counted_in_one_line(tmp_path):
    text = GOOD.replace("seeds = 3", 'seeds = "3"\nepochs = 0').replace('heads = ["linear", "knn"]', 'heads = "x"')
    message = _run(tmp_path, text)
    assert message.startswith("study.toml: 3 problems: ") and "seeds" in message and "epochs" in message


def test_a_head_of_another_task_is_refused_before_extraction(tmp_path, eurosat_dir, tiny_checkpoint):
    text = GOOD.replace('"knn"', '"unet"').replace('encoder = "sam"', f'checkpoint = "{tiny_checkpoint}"')
    message = _run(tmp_path, text, data_dir=eurosat_dir)
    assert "unet is not a classification head (eurosat is a classification dataset)" in message


def test_a_file_that_is_not_utf8_or_not_toml_is_one_line(tmp_path):
    assert "is not UTF-8 text (byte 0xff at offset 11)" in _run(tmp_path, b'dataset = "\xff"\n')
    assert "is not valid TOML" in _run(tmp_path, "dataset = ")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(samembed.SamembedError, match="is a folder"):
        load_study(folder)


def test_a_huge_file_of_unknown_keys_gives_a_short_line(tmp_path):
    keys = "\n".join(f"key{i:06d}_{'x' * 70} = 1" for i in range(100_000))
    message = _run(tmp_path, GOOD + "\n[report]\n" + keys)
    assert "[report] has unknown key(s) key000000_" in message and "... and 99997 more; known: out" in message
    assert len(message) < 600


def test_the_checked_in_studies_pass_the_schema():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.toml")):
        assert load_study(path)["encoders"], path
