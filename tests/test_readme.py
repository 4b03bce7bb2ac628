"""README.md: every link to a place in it lands on a heading (as GitHub names its anchors)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def github_anchor(heading):
    """GitHub's anchor of a Markdown heading: lower case, punctuation but hyphens and underscores dropped, each space
    a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_github_anchor_of_headings_with_code_and_punctuation():
    assert github_anchor("Building a training set: `python -m preprocess build`") == \
        "building-a-training-set-python--m-preprocess-build"
    assert github_anchor("Benchmarks (`bench/`, never part of the tests)") == "benchmarks-bench-never-part-of-the-tests"


def test_every_link_within_the_readme_lands_on_a_heading():
    text = (ROOT / "README.md").read_text()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # a shell comment is no heading
    anchors = {github_anchor(heading) for heading in re.findall(r"^#+ (.+)$", prose, flags=re.MULTILINE)}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert len(links) >= 13  # the contents line's
    assert [link for link in links if link not in anchors] == []
