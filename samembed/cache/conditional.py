"""The object-store back ends of the writers' lease (:mod:`samembed.cache.lease`): conditional
creates, replaces and deletes of one small object, on S3 (its ``If-None-Match`` and ``If-Match``
headers) and, read-then-write, on any other fsspec file system."""

from __future__ import annotations

from .lease import ConditionalObjects, content_etag


class S3Objects(ConditionalObjects):
    """Conditional puts on S3 (and servers that implement them): ``If-None-Match: *`` to create,
    ``If-Match: <etag>`` to replace or delete."""

    atomic = True

    def __init__(self, fs):
        self.fs = fs

    def _call(self, method: str, key: str, **kwargs):
        from zarr.core.sync import sync

        bucket, path = key.split("/", 1)
        return sync(self.fs._call_s3(method, Bucket=bucket, Key=path, **kwargs))

    @staticmethod
    def _refused(err: BaseException) -> bool:
        """A condition that did not hold (s3fs passes botocore's error on as the cause)."""
        for e in (err, err.__cause__):
            code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return True
        return False

    def _conditional(self, method: str, key: str, refusals: tuple[type[Exception], ...], **condition) -> dict | None:
        """The response of a conditional call, or ``None`` where its condition did not hold: s3fs
        raises one of ``refusals`` for some (FileNotFoundError only where the object had to exist),
        botocore's error for others."""
        try:
            return self._call(method, key, **condition)
        except refusals:
            return None
        except Exception as err:
            if self._refused(err):
                return None
            raise

    def create(self, key: str, data: bytes) -> str | None:
        response = self._conditional("put_object", key, (FileExistsError,), Body=data, IfNoneMatch="*")
        return None if response is None else response["ETag"]

    def read(self, key: str) -> tuple[bytes, str] | None:
        from zarr.core.sync import sync

        try:
            response = self._call("get_object", key)
        except FileNotFoundError:
            return None

        async def body():
            async with response["Body"] as stream:
                return await stream.read()

        return sync(body()), response["ETag"]

    def replace(self, key: str, data: bytes, etag: str) -> str | None:
        response = self._conditional("put_object", key, (FileExistsError, FileNotFoundError), Body=data, IfMatch=etag)
        return None if response is None else response["ETag"]

    def delete(self, key: str, etag: str) -> bool:
        return self._conditional("delete_object", key, (FileExistsError, FileNotFoundError), IfMatch=etag) is not None


class FsspecObjects(ConditionalObjects):
    """Any other fsspec file system: read, compare, then write (not atomic; :class:`Lease` says so)."""

    atomic = False

    def __init__(self, fs, run):
        self.fs, self.run = fs, run

    def create(self, key: str, data: bytes) -> str | None:
        if self.run(self.fs._exists(key)):
            return None
        self.run(self.fs._pipe_file(key, data))
        return content_etag(data)

    def read(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.run(self.fs._cat_file(key))
        except FileNotFoundError:
            return None
        return data, content_etag(data)

    def replace(self, key: str, data: bytes, etag: str) -> str | None:
        found = self.read(key)
        if found is None or found[1] != etag:
            return None
        self.run(self.fs._pipe_file(key, data))
        return content_etag(data)

    def delete(self, key: str, etag: str) -> bool:
        found = self.read(key)
        if found is None or found[1] != etag:
            return False
        self.run(self.fs._rm_file(key))
        return True
