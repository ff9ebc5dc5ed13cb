"""A Python flow as a package: a folder archived reproducibly (the artifact of
`register --package DIR`), and how `culvert execute` runs one:

    python3 -m culvert._package ARCHIVE execute [--workers N]

The archive is a gzip-compressed tar of the folder's files in name order, with fixed
owners, modes and times, so the same folder gives the same bytes (and the same
content address). Its member `.culvert-entrypoint` names the flow file in it.
"""

import gzip
import hashlib
import io
import os
import runpy
import sys
import tarfile
import tempfile

ENTRYPOINT = ".culvert-entrypoint"
_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache"}
MAX_FILES = 100000
MAX_BYTES = 2 << 30  # an unpacked package holds at most 2 GiB


def _member(name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_archive(folder, flow_file):
    """Archives `folder` (which holds `flow_file`) into a new temporary file; returns its path."""
    folder = os.path.abspath(folder)
    flow_file = os.path.abspath(flow_file)
    if not os.path.isdir(folder):
        raise ValueError(f"--package {folder}: not a folder")
    rel = os.path.relpath(flow_file, folder)
    if rel.startswith(".."):
        raise ValueError(f"--package {folder}: the flow file {flow_file} is not inside it")
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for n in sorted(names):
            if n.endswith((".pyc", ".pyo")):
                continue
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(os.path.relpath(p, folder))
            if len(files) > MAX_FILES:
                raise ValueError(f"--package {folder}: more than {MAX_FILES} files")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        entry = rel.replace(os.sep, "/").encode()
        tar.addfile(_member(ENTRYPOINT, entry), io.BytesIO(entry))
        for f in sorted(files):
            with open(os.path.join(folder, f), "rb") as fh:
                data = fh.read()
            mode = 0o755 if os.access(os.path.join(folder, f), os.X_OK) else 0o644
            tar.addfile(_member(f.replace(os.sep, "/"), data, mode), io.BytesIO(data))
    fd, path = tempfile.mkstemp(prefix="culvert-package-", suffix=".tar.gz")
    with os.fdopen(fd, "wb") as out:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
            gz.write(buf.getvalue())
    return path


def _extract(archive):
    with open(archive, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    base = os.environ.get("CULVERT_PACKAGE_DIR") or os.path.join(tempfile.gettempdir(), "culvert-packages")
    dest = os.path.join(base, digest)
    if not os.path.isfile(os.path.join(dest, ENTRYPOINT)):
        os.makedirs(base, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=digest + ".", dir=base)
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            if len(members) > MAX_FILES + 1 or sum(m.size for m in members) > MAX_BYTES:
                raise ValueError(f"{archive}: more than {MAX_FILES} files or {MAX_BYTES} bytes")
            for m in members:
                if not m.isfile() or m.name.startswith("/") or ".." in m.name.split("/"):
                    raise ValueError(f"{archive}: unexpected member {m.name!r}")
            tar.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            pass  # another run extracted it first
    with open(os.path.join(dest, ENTRYPOINT)) as fh:
        entry = fh.read().strip()
    return dest, os.path.join(dest, entry)


def run_archive(archive, args):
    dest, entry = _extract(archive)
    sys.path.insert(0, os.path.dirname(entry))
    if dest != os.path.dirname(entry):
        sys.path.insert(1, dest)
    sys.argv = [entry] + list(args)
    os.chdir(dest)
    runpy.run_path(entry, run_name="__main__")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python3 -m culvert._package ARCHIVE execute [--workers N]", file=sys.stderr)
        sys.exit(2)
    try:
        run_archive(sys.argv[1], sys.argv[2:])
    except (OSError, ValueError, tarfile.TarError) as e:
        print(f"culvert: python package {sys.argv[1]}: {e}", file=sys.stderr)
        sys.exit(2)
