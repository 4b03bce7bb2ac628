"""Which code made a result: --version on every command, and the commit of a git checkout, or none outside one."""
import shutil
import subprocess
import sys

import pytest
import torch

from mmode.checkpoint import save_checkpoint
from mmode.version import PROJECT_ROOT, __version__, git_commit, software

GIT = shutil.which("git")


@pytest.mark.parametrize("command", [["test.py"], ["run.py"], ["-m", "preprocess"]])
def test_every_command_prints_the_version_and_exits_before_checking_its_arguments(command):
    # test.py and run.py require -d; --version answers without it
    done = subprocess.run([sys.executable, *command, "--version"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    git_commit.cache_clear()  # this process may have asked before a commit the command already sees
    commit = git_commit()
    assert done.stdout == f"Heart-Segmentation {__version__}" + ("" if commit is None else f" (commit {commit})") + "\n"


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_the_commit_is_the_checkouts_own_and_says_when_tracked_files_were_changed(tmp_path):
    def git(*args, cwd=tmp_path / "project"):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()

    project = tmp_path / "project"
    project.mkdir()
    git("init", "-q")
    (project / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD")
    assert git_commit(project) == head
    (project / "notes.txt").write_text("untracked files do not make it dirty\n")
    git_commit.cache_clear()
    assert git_commit(project) == head
    (project / "a.py").write_text("x = 2\n")
    git_commit.cache_clear()
    assert git_commit(project) == head + "-dirty"
    # a copy of the files outside any checkout, or a folder inside another project's checkout: no commit to tell
    (tmp_path / "copy").mkdir()
    (project / "vendored").mkdir()
    git_commit.cache_clear()
    assert git_commit(tmp_path / "copy") is None and git_commit(project / "vendored") is None
    git_commit.cache_clear()


def test_a_checkpoint_records_the_code_that_trained_it(tmp_path):
    net = torch.nn.Conv2d(1, 1, 1)
    path = save_checkpoint(tmp_path / "c.pt", net, {"num_channels": 1}, 16, epoch=1, optimizer=None, loss=0.5,
                           dice=0.5, mse=0.1, best_dice=0.5, best_mse=0.1)
    checkpoint = torch.load(path, weights_only=False)
    assert {key: checkpoint[key] for key in software()} == software()
    assert checkpoint["software_version"] == __version__
