"""Documents read from a folder and split at their headings (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.retrieval import Document, DocumentError, load_documents
from shipyard.retrieval.sections import split_sections

CORPUS = Path(__file__).parent / "corpus"


def test_a_folder_loads_every_supported_type_and_keeps_sensitive_documents_out() -> None:
    docs = load_documents(CORPUS)
    assert [d.path for d in docs] == [
        "guide/config.md",
        "guide/deploy.html",
        "guide/install.md",
        "library/caching.md",
        "library/errors.txt",
        "library/scheduling.rst.txt",
        "library/storage.rst",
    ]  # private/ says sensitive: true / index: false; .css and hidden folders are skipped
    types = {d.path: d.type for d in docs}
    assert types["library/scheduling.rst.txt"] == "rst" and types["guide/deploy.html"] == "html"
    assert "salary" not in " ".join(d.text for d in docs).lower()


def test_exclude_globs_and_types_narrow_the_folder() -> None:
    docs = load_documents(CORPUS, exclude=["guide/*", "library/errors.txt"])
    assert [d.path for d in docs] == [
        "library/caching.md",
        "library/scheduling.rst.txt",
        "library/storage.rst",
    ]
    assert [d.path for d in load_documents(CORPUS, exclude=["guide"], types={"rst"})] == [
        "library/scheduling.rst.txt",
        "library/storage.rst",
    ]


def test_front_matter_and_html_meta_become_metadata() -> None:
    docs = {d.path: d for d in load_documents(CORPUS)}
    install = docs["guide/install.md"]
    assert install.title == "Installing the toolkit"
    assert install.meta == {"title": "Installing the toolkit", "year": 2024, "genre": "guide"}
    assert "title:" not in install.text and "year: 2024" not in install.text
    assert docs["guide/deploy.html"].meta == {"year": 2025, "genre": "howto"}
    assert docs["library/storage.rst"].title == "Storage and blob stores"
    assert docs["library/errors.txt"].title == "errors"


def test_markdown_sections_carry_their_heading_paths() -> None:
    doc = next(d for d in load_documents(CORPUS) if d.path == "guide/install.md")
    paths = [s.heading_path for s in doc.sections]
    assert paths == [
        ("Installing the toolkit",),
        ("Installing the toolkit", "Requirements"),
        ("Installing the toolkit", "Offline installation"),
        ("Installing the toolkit", "Offline installation", "Verifying the wheels"),
        ("Upgrading",),
    ]
    assert doc.sections[-1].text.startswith("Run `pip install --upgrade toolkit`")
    config = next(d for d in load_documents(CORPUS) if d.path == "guide/config.md")
    assert [s.heading_path for s in config.sections] == [
        ("Configuration",),
        ("Configuration", "Logging"),
        ("Configuration", "Timeouts"),
    ]  # setext headings; the `#` line inside a fenced block is text
    assert "# a fenced block whose hash is not a heading" in config.sections[1].text


def test_restructuredtext_sections_follow_the_adornment_order() -> None:
    docs = {d.path: d for d in load_documents(CORPUS)}
    storage = docs["library/storage.rst"]
    assert [s.heading_path for s in storage.sections] == [
        ("Storage and blob stores",),
        ("Storage and blob stores", "Local folders"),
        ("Storage and blob stores", "S3 buckets"),
        ("Storage and blob stores", "S3 buckets", "Garbage collection"),
    ]
    first = storage.sections[0].text
    assert "toolkit.storage.put" in first and "toolkit.storage.BlobStore" in first  # roles
    assert (
        ":func:" not in first and ".. _storage" not in first and "garbage collection" not in first
    )
    assert "put(data, *, compress=True)" in storage.sections[1].text  # a directive's signature
    sphinx = docs["library/scheduling.rst.txt"]
    assert [s.heading_path[-1] for s in sphinx.sections] == [
        "Scheduling flows",
        "Missed runs",
        "Triggers",
    ]


def test_html_sections_skip_navigation_scripts_and_header_links() -> None:
    deploy = next(d for d in load_documents(CORPUS) if d.path == "guide/deploy.html")
    assert deploy.title == "Deploying services"
    assert [s.heading_path for s in deploy.sections] == [
        ("Deploying services",),
        ("Deploying services", "Scaling replicas"),
        ("Deploying services", "Rolling back"),
    ]
    text = deploy.text
    for noise in ("tracking", "Sidebar link", "Copyright footer", "¶", "next page", "color"):
        assert noise not in text
    assert "toolkit rollback app\n  --to 3" in deploy.sections[2].text  # <pre> kept as is
    assert "Each replica gets its own process." in deploy.sections[1].text


def test_a_hand_made_document_is_split_by_its_type() -> None:
    doc = Document("notes.md", "md", "Notes", "# A\none\n## B\ntwo\n# C\nthree")
    assert [(s.heading_path, s.text) for s in doc.outline()] == [
        (("A",), "one"),
        (("A", "B"), "two"),
        (("C",), "three"),
    ]
    assert split_sections("plain text\n\nmore", "txt")[0].heading_path == ()


def test_bad_front_matter_and_a_missing_folder_are_named(tmp_path: Path) -> None:
    (tmp_path / "bad.md").write_text("---\nyear: [2024\n---\n# Bad\n")
    with pytest.raises(DocumentError, match=r"bad\.md: front matter is not valid YAML"):
        load_documents(tmp_path)
    with pytest.raises(DocumentError, match="is not a directory"):
        load_documents(tmp_path / "nope")


def test_importing_the_package_loads_no_model_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, shipyard.retrieval as r; r.Document; r.rrf; r.load_documents; "
        "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'bm25s', 'usearch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
