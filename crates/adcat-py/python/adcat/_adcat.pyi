# The native module (src/lib.rs). Private: use the functions of `adcat`.
from os import PathLike
from typing import Callable, TypedDict

_Path = str | PathLike[str]
_Progress = Callable[[int, int, str], object] | None

__version__: str

class _ConcatArgs(TypedDict):
    inputs: list[_Path]
    output: _Path
    format: str
    keys: list[str] | None
    axis: str
    join: str
    merge: str | None
    uns_merge: str | None
    label: str | None
    index_unique: str | None
    fill_value: float | None
    pairwise: bool
    zarr_format: int
    compression: str | None
    max_memory: str
    follow_external_links: bool
    task_size: str | None

def concat(args: _ConcatArgs, *, force: bool, threads: int | None, progress: _Progress) -> list[str]: ...
def append(args: _ConcatArgs, *, threads: int | None, progress: _Progress) -> list[str]: ...
def plan(args: _ConcatArgs) -> str: ...
def convert(
    src: _Path, dst: _Path, *, format: str, zarr_format: int, compression: str | None, max_memory: str,
    force: bool, follow_external_links: bool, threads: int | None, progress: _Progress,
) -> None: ...
def inspect(path: _Path, *, follow_external_links: bool) -> str: ...
def validate(path: _Path, *, quick: bool, follow_external_links: bool) -> tuple[int | None, int | None, list[str]]: ...
def job_create(args: _ConcatArgs, *, force: bool) -> tuple[str, list[str]]: ...
def job_tasks(job: str) -> list[tuple[str, str, list[int]]]: ...
def job_run(
    job: str, task: int, needs: list[list[int]], *, max_memory: str | None, follow_external_links: bool, threads: int | None,
) -> list[int] | None: ...
def job_finish(job: str, results: list[list[int] | None], *, follow_external_links: bool, threads: int | None) -> str: ...
def job_discard(job: str) -> None: ...
def main(argv: list[str]) -> int: ...
