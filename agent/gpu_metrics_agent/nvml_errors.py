"""NVML's errors sorted into the three tiers the collector acts on.

- absent: the GPU or driver does not offer the field. The series is left out, never reported as zero.
- device: anything else one device raises. That device is skipped for the cycle and counted.
- lifecycle: the library or a GPU is gone. The cycle fails and NVML is initialised again next cycle.

The classes come from the injected NVML module (the real ``pynvml`` or the fake, which re-exports pynvml's own
classes), so the tiers are the real ``pynvml.NVMLError_*`` types in production and in tests alike.
"""

from __future__ import annotations

from dataclasses import dataclass

_ABSENT = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound", "NVMLError_NoPermission")
# GPU lost and reset required are about one device, but they are lifecycle errors: NVML has to be initialised again
# before anything it says about that GPU can be trusted.
_GONE = ("NVMLError_GpuIsLost", "NVMLError_ResetRequired")
_LIFECYCLE = _GONE + ("NVMLError_Uninitialized", "NVMLError_DriverNotLoaded", "NVMLError_LibraryNotFound",
                      "NVMLError_LibRmVersionMismatch")
# The driver is absent altogether: at start-up this is a configuration problem, not something to wait out.
_NO_DRIVER = ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded")


def _classes(nvml, names: tuple[str, ...]) -> tuple[type, ...]:
    # Older nvidia-ml-py releases lack some codes; a class the module does not define cannot be raised by it.
    return tuple(cls for cls in (getattr(nvml, name, None) for name in names) if cls is not None)


@dataclass(frozen=True)
class ErrorTiers:
    """The NVMLError subclasses of one NVML module, grouped by what the collector does about them."""

    base: type
    absent: tuple[type, ...]
    gone: tuple[type, ...]
    lifecycle: tuple[type, ...]
    no_driver: tuple[type, ...]
    not_found: type
    timeout: type
    function_not_found: type

    @classmethod
    def of(cls, nvml) -> "ErrorTiers":
        return cls(base=nvml.NVMLError, absent=_classes(nvml, _ABSENT), gone=_classes(nvml, _GONE),
                   lifecycle=_classes(nvml, _LIFECYCLE), no_driver=_classes(nvml, _NO_DRIVER),
                   not_found=nvml.NVMLError_NotFound, timeout=nvml.NVMLError_Timeout,
                   function_not_found=nvml.NVMLError_FunctionNotFound)


def describe(exc: BaseException) -> str:
    """The error's NVML name and text, e.g. ``NVMLError_GpuIsLost (GPU is lost)``."""
    return f"{type(exc).__name__} ({exc})"
