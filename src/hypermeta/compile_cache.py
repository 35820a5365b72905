"""JAX's persistent compilation cache for hypermeta: compile a configuration once per machine.

The compiled training program of a configuration (RNN+HN on Grid-World: about 40 s to the
first chunk on an idle 2-core CPU, up to 80 s on a loaded one, docs/results/compile-cache;
MuJoCo up to 3 minutes) is written to a cache directory
the first time; every later process with the same configuration (a resume, the next cell
of a sweep, `hypermeta eval`) loads the executable instead of compiling it. Tracing and
lowering to XLA still happen in every process (a few seconds); only XLA's compilation is
saved. Results do not depend on the cache: an entry is the executable XLA built for an
identical program (the key hashes the program, the compile options, the backend and the
JAX/XLA versions), and loading it gives bit-identical results.

Where (first that applies):

1. `setup(setting)` with an explicit setting: the commands' `--compile-cache PATH|off`;
2. the environment variable HYPERMETA_COMPILE_CACHE (PATH or "off"), e.g. for Ray workers
   and tests;
3. a cache the user already configured in JAX (JAX_COMPILATION_CACHE_DIR or
   `jax.config.update("jax_compilation_cache_dir", ...)` before training): left as is;
4. `$XDG_CACHE_HOME/hypermeta/jax`, else `~/.cache/hypermeta/jax`.

"off": hypermeta sets up no cache (a cache configured in JAX itself, as in 3, still
applies). Everything compiles in every process, as without this module.

`setup` is called at the start of every command that compiles (hypermeta train, sweep,
reproduce, eval; `cli.py`) and by `hypermeta.training.loop.train` (so a Python caller and
a Ray cell get it too); after the first call in a process, `setup()` without a setting
does nothing.

Robustness: a directory that cannot be used (a file, cannot be created, not writable,
or a foreign directory: one holding files that are not compilation-cache entries, e.g.
`--compile-cache ~`) gives one warning line and training goes on without a cache. A
corrupt entry (a truncated or damaged file, e.g. from a process killed while writing) is
detected when read (its checksum fails), removed, and compiled again, with one warning
line; a failed write (disk full) gives one warning line and no further writes. Entries are
written atomically (a temporary file renamed), so processes sharing the cache (a sweep's
Ray cells) never read half an entry. JAX 0.10 itself turns read and write errors into a
Python warning per program but never replaces a corrupt entry, so the same one would fail
in every later process, and writes entries in place.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "HYPERMETA_COMPILE_CACHE"
OFF = "off"

MIN_COMPILE_SECONDS = 0.2
"""Programs that compiled faster than this are not written (jax_persistent_cache_min_compile_time_secs;
JAX's default is 1 s). The training chunk, the run initialisation and the evaluation programs
take longer; the many small eager operations are cheaper to compile again than to read."""

MAX_BYTES = 4 << 30
"""Size limit of the cache directory, applied by `prune` at setup: beyond it the least
recently used entries are deleted."""

MARKER = "HYPERMETA-COMPILE-CACHE.txt"
"""A file hypermeta writes into a directory it uses as a cache: it marks the directory as
one, so a foreign directory (one without it, holding other files) is never written to."""

# What JAX writes into a cache directory: entries, their access times, the eviction lock,
# the XLA GPU caches (jax_persistent_cache_enable_xla_caches); and our atomic-write temporaries.
_JAX_SUFFIXES = ("-cache", "-atime")
_JAX_NAMES = (".lockfile", "xla_gpu_per_fusion_autotune_cache_dir", "xla_gpu_kernel_cache_file")

_state: dict = {"done": False, "path": None}
_warned: set[str] = set()


def warn(kind: str, message: str) -> None:
    """One line on stderr, once per kind and process."""
    if kind in _warned:
        return
    _warned.add(kind)
    print(f"hypermeta: warning: {message}", file=sys.stderr, flush=True)


def default_dir() -> Path:
    """$XDG_CACHE_HOME/hypermeta/jax, else ~/.cache/hypermeta/jax."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # XDG: relative values are ignored
    return root / "hypermeta" / "jax"


def requested(setting: str | None = None) -> str | None:
    """The setting that applies: `setting`, else $HYPERMETA_COMPILE_CACHE, else None (the default)."""
    if setting is not None and str(setting).strip():
        return str(setting).strip()
    env = os.environ.get(ENV_VAR, "").strip()
    return env or None


def _is_jax_entry(name: str) -> bool:
    return (name.endswith(_JAX_SUFFIXES) or name in _JAX_NAMES or name == MARKER
            or name.startswith(".tmp-"))


def check_dir(path: Path) -> str:
    """'' if `path` can be this process's cache directory (created if missing, marked as a
    cache), else why not (one line)."""
    where = f"compilation cache {str(path)!r}"
    if path.exists() and not path.is_dir():
        return f"{where} is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{where} cannot be created ({e.strerror or e})"
    try:
        names = os.listdir(path)
    except OSError as e:
        return f"{where} cannot be read ({e.strerror or e})"
    if MARKER not in names:
        foreign = sorted(n for n in names if not _is_jax_entry(n))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            return (f"{where} holds other files ({shown}), not a compilation cache; give an empty or "
                    "new directory")
    probe = path / f".tmp-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        if MARKER not in names:
            (path / MARKER).write_text(
                "JAX compilation cache of hypermeta (src/hypermeta/compile_cache.py): compiled programs, "
                "keyed by program, options, backend and versions. Safe to delete; it refills itself.\n")
    except OSError as e:
        return f"{where} is not writable ({e.strerror or e})"
    return ""


def setup(setting: str | None = None) -> Path | None:
    """Turn on the persistent compilation cache for this process (see the module docstring);
    returns its directory, or None when hypermeta set up none. Never raises on a bad
    directory: it warns in one line and compiles without a cache.

    `setting` (a path or "off") is the command's --compile-cache; None: the environment
    variable, else the default. Without a setting, a second call does nothing. An explicit
    setting is also exported to HYPERMETA_COMPILE_CACHE, so processes this one starts (Ray's
    local workers) use the same cache."""
    explicit = setting is not None and bool(str(setting).strip())
    if _state["done"] and not explicit:
        return _state["path"]
    choice = requested(setting)
    if explicit:
        os.environ[ENV_VAR] = choice
    _state["done"] = True
    import jax

    if choice is not None and choice.lower() == OFF:
        _state["path"] = None
        return None
    if choice is None and jax.config.jax_compilation_cache_dir:
        _state["path"] = None  # the user's own JAX cache: theirs to configure
        return None
    path = default_dir() if choice is None else Path(choice).expanduser()
    problem = check_dir(path)
    if problem:
        warn("unusable", f"{problem}; compiling without a cache")
        _state["path"] = None
        return None
    path = path.resolve()
    _configure(jax, path)
    _state["path"] = path
    return path


def _configure(jax, path: Path) -> None:
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    # Entries of any size (0 would let JAX pick a filesystem-dependent minimum; -1 fixes none).
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    # jax_persistent_cache_enable_xla_caches keeps JAX's default: on a GPU, XLA's per-fusion
    # autotuning results go to a subdirectory of the cache too. JAX's own size limit
    # (jax_compilation_cache_max_size) stays off: its eviction fails for good on an entry
    # without its access-time file (a process killed while writing); `prune` limits the size.
    prune(path)
    try:
        from jax._src import compilation_cache as cc
        from jax._src.compilation_cache_interface import CacheInterface

        _install_checked_cache(cc, CacheInterface, path)
        cc.reset_cache()  # the next compilation opens the cache at `path`
    except (ImportError, AttributeError):
        pass  # another JAX: its own file cache with its own error handling


def _install_checked_cache(cc, interface, path: Path) -> None:
    """Make JAX open the cache at `path` as a `CheckedCache` (private JAX API, guarded)."""
    original = getattr(cc.get_file_cache, "__wrapped__", cc.get_file_cache)
    decompress = cc.decompress_executable

    class CheckedCache(interface):
        """JAX's file layout (KEY-cache files) with corrupt entries removed on read, atomic
        writes (a reader never sees half a file), use times for `prune`, and read and write
        errors as one warning line (JAX warns for every program and keeps a corrupt entry,
        which then fails in every later process)."""

        def __init__(self):
            self._path, self._writable = path, True

        def get(self, key: str) -> bytes | None:
            file = path / f"{key}-cache"
            try:
                value = file.read_bytes()
            except FileNotFoundError:
                return None
            except OSError as e:
                warn("read", f"compilation cache {str(path)!r} cannot be read ({e.strerror or e}); compiling")
                return None
            try:
                decompress(value)  # zlib/zstd checksums: a truncated or damaged entry fails here
            except Exception:  # noqa: BLE001  (a cache must never stop training)
                warn("corrupt", f"corrupt compilation cache entry {file.name[:24]}... in {str(path)!r} "
                     "removed; compiling again")
                try:
                    file.unlink(missing_ok=True)
                except OSError:
                    pass
                return None
            try:
                os.utime(file)  # recently used: kept by prune
            except OSError:
                pass
            return value

        def put(self, key: str, value: bytes) -> None:
            if not self._writable:
                return
            file = path / f"{key}-cache"
            tmp = path / f".tmp-{key}-{os.getpid()}"
            try:
                if file.exists():
                    return
                tmp.write_bytes(value)
                os.replace(tmp, file)
            except OSError as e:
                self._writable = False
                warn("write", f"compilation cache {str(path)!r} cannot be written ({e.strerror or e}); "
                     "no further entries are written")
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass

        def clear(self) -> None:
            pass

    def get_file_cache(p: str):
        if Path(p) != path:
            return original(p)
        return CheckedCache(), str(path)

    get_file_cache.__wrapped__ = original
    cc.get_file_cache = get_file_cache


def prune(path: Path, max_bytes: int = MAX_BYTES) -> None:
    """Keep the cache under `max_bytes`: delete the least recently used entries down to 3/4
    of it, and temporaries of writers that died over an hour ago. Errors are ignored."""
    import time

    try:
        entries = []
        for p in path.iterdir():
            st = p.stat()
            if p.name.startswith(".tmp-") and st.st_mtime < time.time() - 3600:
                p.unlink(missing_ok=True)
            elif p.name.endswith("-cache") and p.is_file():
                entries.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        if total <= max_bytes:
            return
        for _, size, p in sorted(entries):
            p.unlink(missing_ok=True)
            total -= size
            if total <= max_bytes * 3 // 4:
                break
    except OSError:
        pass
