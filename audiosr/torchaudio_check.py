"""torchaudio, loaded with its compiled operators, or one line that says which versions disagree.

torchaudio's compiled extension loads only beside the torch release it was built for, and
its metadata does not always say which that is: torchaudio 2.11.1 admits torch 2.11.0 but
fails to load with it (``undefined symbol: torch_exception_get_what_without_backtrace``).
A user should read both versions and what to do, not a linker's traceback.
"""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from types import ModuleType


class TorchaudioUnavailable(ImportError):
    """torchaudio is missing or its compiled operators do not load with the installed torch."""


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def root_reason(error: BaseException) -> str:
    """The first error of the chain, without its directories: torch wraps the linker's message
    (``libtorchaudio.so: undefined symbol: ...``) in a vaguer "Could not load this library"."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    text = " ".join(str(error).split()) or type(error).__name__
    return re.sub(r"(?:[A-Za-z]:)?[/\\][^\s:]*[/\\]", "", text)


def load_torchaudio() -> ModuleType:
    """``torchaudio``, with ``libtorchaudio`` loaded; raises :class:`TorchaudioUnavailable` otherwise."""
    try:
        # Importing the extension module is what loads the compiled library, so a mismatch
        # shows here rather than at the first operator call.
        importlib.import_module("torchaudio._extension")
        return importlib.import_module("torchaudio")
    except (ImportError, OSError, RuntimeError) as error:
        torch_version = installed_version("torch") or "(not installed)"
        audio_version = installed_version("torchaudio")
        if audio_version is None:
            raise TorchaudioUnavailable(
                f"torchaudio is not installed (torch {torch_version}); `make install` installs the locked set"
            ) from error
        raise TorchaudioUnavailable(
            f"torchaudio {audio_version} does not load with torch {torch_version} ({root_reason(error)}); "
            "install the torchaudio release built for this torch, e.g. the pair in requirements.lock "
            "(`make install`)"
        ) from error
