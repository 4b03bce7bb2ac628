"""Which code made a result: the tool's version and, in a git checkout of the project, its commit.

A summary, a test set's metrics and a checkpoint record both (`software()`), beside the model's SHA-256, because the
same recording and weights can measure differently under other code (a beat rule, a flag, a border step). The
version names a state of the tool a methods section can cite; the commit pins the exact code, `-dirty` when files
the checkout tracks had been changed.
"""
import argparse
import functools
import subprocess
from pathlib import Path

# Raised when a change can move a result for the same input and model (README, "Versions").
__version__ = "0.38.0"

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GIT_TIMEOUT_S = 5


@functools.lru_cache(maxsize=1)
def git_commit(root=PROJECT_ROOT):
    """The commit of the git checkout that holds the project (`root` its top folder), with `-dirty` when tracked
    files differ from it; None when git is missing, `root` is not the top of a checkout (a copy of the files, or a
    folder inside another project's repository) or git fails."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != Path(root).resolve():
            return None
        commit = git("rev-parse", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def software():
    """{"software_version": __version__, "software_commit": `git_commit()`}: what a result file records."""
    return {"software_version": __version__, "software_commit": git_commit()}


def version_line():
    """What `--version` prints: 'Heart-Segmentation 0.38.0 (commit abc123...)', without the commit outside git."""
    commit = git_commit()
    return f"Heart-Segmentation {__version__}" + ("" if commit is None else f" (commit {commit})")


class VersionAction(argparse.Action):
    """`--version`: prints `version_line()` and exits, before any other argument is checked (git runs only then)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the tool's version (and its git commit, in a checkout) and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()
