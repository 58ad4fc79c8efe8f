"""What of the machine and the interpreter can change a run's numbers without changing a scenario.

Two uses, one description: the run cache's key (``harness.run.cache``: a run made under another
environment is never served) and the stamp each report carries (where it was made).

- ``numeric_variables()``: the environment variables that numpy/OpenBLAS/MKL/oneDNN/OpenMP,
  TensorFlow, torch, JAX/XLA and Keras read to choose kernels, threads or precision.
- ``startup_customisations()``: what the interpreter runs before any harness code
  (``sitecustomize``/``usercustomize`` modules, ``.pth`` files, ``PYTHONPATH``, ``PYTHONSTARTUP``) and
  what the dynamic loader puts before a framework's libraries (``LD_PRELOAD``, ``LD_LIBRARY_PATH``),
  each file named with a hash of its bytes, so a patched framework is seen.
- ``blas()``: the BLAS library numpy calls, its version, the kernel it picked (OpenBLAS'
  ``architecture``, which ``OPENBLAS_CORETYPE`` overrides) and its thread count (threadpoolctl).
  SciPy, which JAX imports, brings its own OpenBLAS: it is in the description as a package (its
  version and installed files, whether or not the describing process imported it), its kernel and
  threads chosen by the same CPU and variables.
- ``cpu_model()``, ``versions()``, ``installed_files()``: the processor, the framework package
  versions, and a fingerprint of each framework's installed files (path, size and mtime of every
  file its distribution records but headers, stubs and bytecode caches: an edited file is seen
  without reading every byte; about 0.5 s per command for numpy, SciPy, TensorFlow, Keras, torch, JAX).
- ``DEFAULTS`` and the frameworks' threads (``harness.run.threads``): what the adapters set before a
  framework computes (so the description is the same whether or not a framework was loaded in the
  describing process).

Everything is computed once per process (``describe``/``fingerprint``); nothing here imports a
framework. ``public()``, ``parts()`` and ``environment_line()`` are the description as generated files
show it: no absolute path, no file hash.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import site
import sys
from pathlib import Path

import numpy  # noqa: F401  (its BLAS must be loaded for threadpoolctl to describe it)
import threadpoolctl

from harness.run.threads import framework_threads

PACKAGES = ("numpy", "scipy", "tensorflow-cpu", "tensorflow", "keras", "torch", "jax", "jaxlib", "matplotlib")
# prefixes of the environment variables that select kernels, threads or precision
# (TensorFlow's are listed one family at a time: other tools, Terraform among them, also use TF_)
NUMERIC_PREFIXES = ("OPENBLAS_", "GOTO_", "MKL_", "OMP_", "KMP_", "GOMP_", "DNNL_", "ONEDNN_", "XLA_", "JAX_",
                    "KERAS_", "TORCH_", "PYTORCH_", "ATEN_", "NPY_", "NUMPY_", "BLIS_", "VECLIB_", "CUDA_", "NVIDIA_",
                    "TPU_", "TF_ENABLE_", "TF_NUM_", "TF_XLA", "TF_DETERMINISTIC", "TF_INTRA_", "TF_INTER_", "TF_USE_",
                    "TF_MKL", "TF_ONEDNN", "TF_CUDNN", "TF_GPU", "TF_FORCE_", "TF_DISABLE_", "TF_FP", "TF_FLOAT")
NUMERIC_EXACT = ("NN_PARITY_THREADS",)
# KMP_DUPLICATE_LIB_OK lets two OpenMP runtimes load and computes nothing; KERAS_BACKEND is set by the
# adapters for each Keras run (keras: tensorflow, keras@jax, keras@torch), so a user's value changes nothing
NOT_NUMERIC = ("KMP_DUPLICATE_LIB_OK", "KERAS_BACKEND")
# what the frameworks set in their own process when they are imported, none of it read by a CPU computation:
# a process that imported one (a test, a worker, the pytest plugin's in-process runs) would otherwise describe
# another environment, and so other cache keys, than one that did not (CI failed so: a cache test ran in a
# pytest worker that had imported TensorFlow). JAX: TPU_SKIP_MDS_QUERY (skips a cloud metadata query);
# TensorFlow: TPU_ML_PLATFORM(_VERSION) (names itself to a TPU runtime); Keras on another backend than
# TensorFlow: TF_FORCE_GPU_ALLOW_GROWTH (GPU memory). tests/test_cache.py imports each for real.
SET_BY_FRAMEWORKS = ("TPU_SKIP_MDS_QUERY", "TPU_ML_PLATFORM", "TPU_ML_PLATFORM_VERSION", "TF_FORCE_GPU_ALLOW_GROWTH")
# numeric variables the adapters set when the user has not (harness.run.adapters.keras_tf): oneDNN off
DEFAULTS = {"TF_ENABLE_ONEDNN_OPTS": "0"}
STARTUP_VARIABLES = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE")
# the dynamic loader's: a preloaded library can replace any function a framework calls (measured: a shim
# making torch's MKL take its Intel code path on an AMD CPU changed 524 of 70,228 recorded arrays), and
# a library path can put another build of a kernel library first
LOADER_VARIABLES = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH")
PRELOADS = ("LD_PRELOAD", "DYLD_INSERT_LIBRARIES")  # lists of library files, separated by spaces or colons


def numeric_variables() -> dict[str, str]:
    """The numeric environment variables in effect for a run, by name: those set, and ``DEFAULTS``
    for those that are not (the adapters set them before a framework loads)."""
    return {name: value for name, value in sorted({**DEFAULTS, **os.environ}.items())
            if (name.startswith(NUMERIC_PREFIXES) or name in NUMERIC_EXACT)
            and name not in NOT_NUMERIC + SET_BY_FRAMEWORKS}


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        return f"unreadable ({type(exc).__name__})"


def _site_folders() -> list[Path]:
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return [Path(f) for f in dict.fromkeys(folders) if Path(f).is_dir()]


def startup_customisations() -> dict[str, str]:
    """What the interpreter runs or puts on the path before the harness: name -> content hash."""
    found: dict[str, str] = {name: os.environ[name] for name in (*STARTUP_VARIABLES, *LOADER_VARIABLES)
                             if name in os.environ}
    for name in PRELOADS:
        for library in re.split(r"[\s:]+", os.environ.get(name, "").strip()):
            if library:  # an edited library at the same path is seen
                found[f"{name} {library}"] = _digest(Path(library))
    for module in ("sitecustomize", "usercustomize"):
        origin = _origin(module)
        if origin is not None:
            found[module] = f"{origin}: {_digest(Path(origin))}"
    for folder in _site_folders():
        for pth in sorted(folder.glob("*.pth")):
            found[f"pth {pth.name}"] = _digest(pth)
    if "PYTHONSTARTUP" in os.environ:
        found["PYTHONSTARTUP file"] = _digest(Path(os.environ["PYTHONSTARTUP"]))
    return found


def _origin(module: str) -> str | None:
    """The file ``module`` was (or would be) imported from; None when there is none."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.origin not in (None, "built-in", "frozen") else None


@functools.cache
def _numpy_libraries() -> frozenset[str]:
    """The shared libraries numpy's distribution installed (its bundled BLAS among them)."""
    try:
        dist = importlib.metadata.distribution("numpy")
    except importlib.metadata.PackageNotFoundError:
        return frozenset()
    return frozenset(os.path.realpath(str(dist.locate_file(f))) for f in dist.files or []
                     if f.suffix in (".so", ".dll", ".dylib") or ".so." in f.name)


def blas() -> list[dict[str, str]]:
    """The BLAS library numpy calls (the one its distribution bundles; every BLAS loaded when it
    bundles none, e.g. a distribution's numpy linked to the system's): its implementation, version,
    kernel and threads. Libraries that other packages load later (SciPy's OpenBLAS, which JAX imports;
    OpenMP runtimes) are left out, so the answer does not depend on what was imported first."""
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    loaded = [info for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    own = [info for info in loaded if os.path.realpath(str(info.get("filepath", ""))) in _numpy_libraries()]
    return [{k: str(info[k]) for k in keep if info.get(k) is not None} for info in own or loaded]


def cores() -> int:
    """The cores this process may run on (what the frameworks size their thread pools by)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``; elsewhere what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


NOT_RUN = (".h", ".hpp", ".cuh", ".inc", ".pyi", ".pyc")  # headers, stubs, bytecode caches: nothing a run executes


def installed_files(package: str) -> str:
    """A hash of the path, size and mtime of every file ``package``'s distribution installed
    (its ``RECORD``), headers, stubs and bytecode caches aside (two thirds of torch's and
    TensorFlow's files; a run executes none of them); "absent" when it is not installed."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
    record = dist.read_text("RECORD")
    names = [row[0] for row in csv.reader(record.splitlines()) if row] if record is not None \
        else [str(f) for f in dist.files or []]
    base = str(dist.locate_file(""))
    h = hashlib.sha256()
    for name in names:
        if name.endswith(NOT_RUN):
            continue
        try:
            st = os.stat(os.path.join(base, name))
        except OSError:
            h.update(f"{name} missing\n".encode())
            continue
        h.update(f"{name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@functools.cache
def describe() -> dict[str, object]:
    """The machine and interpreter, for the cache's key and (as ``public()``, without the paths a
    variable may hold) for the reports; no file hashes."""
    return {"cpu": cpu_model(), "machine": platform.machine(), "system": platform.system(), "cores": cores(),
            "blas": blas(), "framework_threads": framework_threads(),
            "versions": versions(), "variables": numeric_variables()}


# an absolute path (POSIX or Windows) inside a variable's value, e.g. XLA_FLAGS=--xla_dump_to=/tmp/x
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:/|[A-Za-z]:[\\/])[^\s,;:=]*")


def public() -> dict[str, object]:
    """``describe()`` as a generated file (a report, the JSON) carries it: every absolute path in a
    variable's value replaced by ``(path)``, its white space one space."""
    d = dict(describe())
    d["variables"] = {k: " ".join(_ABSOLUTE_PATH.sub("(path)", v).split())  # one line, no path
                      for k, v in d["variables"].items()}  # type: ignore[attr-defined]
    return d


def parts() -> dict[str, str]:
    """``public()`` in words, one entry per aspect: CPU, BLAS, framework threads, versions, numeric
    environment variables."""
    d = public()
    libraries = "; ".join(
        f"{lib.get('internal_api', '?')} {lib.get('version', '')}".strip()
        + (f" ({lib['architecture']} kernel)" if "architecture" in lib else "")
        + f", {lib.get('num_threads', '?')} thread{'' if lib.get('num_threads') == '1' else 's'}"
        for lib in d["blas"])  # type: ignore[attr-defined]
    n = d["framework_threads"]
    variables = ", ".join(f"{k}={v}" for k, v in d["variables"].items())  # type: ignore[attr-defined]
    return {"CPU": f"{d['cpu']} ({d['machine']}, {d['system']}, {d['cores']} cores)",
            "BLAS": libraries or "no BLAS loaded",
            "framework threads": f"torch and TensorFlow on {n} thread{'' if n == 1 else 's'}",
            "versions": ", ".join(f"{k} {v}" for k, v in d["versions"].items()),  # type: ignore[attr-defined]
            "numeric environment variables": variables or "none set"}


def environment_line() -> str:
    """``parts()`` as one line of text, for a report's header and the index."""
    return "; ".join(parts().values())


MODULES = ("numpy", "scipy", "tensorflow", "keras", "torch", "jax", "jaxlib", "matplotlib")


def module_origins() -> dict[str, str | None]:
    """Where each framework would be imported from (a copy on ``PYTHONPATH`` shadowing the installed
    one, an editable install: not the files ``installed_files`` walked). Nothing is imported."""
    return {module: _origin(module) for module in MODULES}


@functools.cache
def fingerprint() -> str:
    """A SHA-256 of everything above that can change a run's numbers, including the startup
    customisations' hashes and each framework's installed files (walked once per process)."""
    h = hashlib.sha256()
    h.update(repr(sorted(describe().items(), key=lambda kv: kv[0])).encode())
    h.update(repr(sorted(startup_customisations().items())).encode())
    h.update(repr(module_origins()).encode())
    for package in PACKAGES:
        h.update(f"{package} {installed_files(package)}\n".encode())
    return h.hexdigest()
