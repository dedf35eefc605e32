"""Undoing a relocation is the exact inverse of conda-pack's own replacement (conda's algorithm)."""

from __future__ import annotations

from conda_pack.prefixes import binary_replace, text_replace

from pmpm.record.relocation import undo_binary, undo_text

PLACEHOLDER = b"/build/_placehold_placehold_placehold_placehold_placehold"
PREFIX = b"/scratch/env"


def test_binary_undo_inverts_conda_pack_on_strings_with_several_occurrences():
    original = (
        b"\x7fELF\0\0"
        + b"RUNPATH=" + PLACEHOLDER + b"/lib:" + PLACEHOLDER + b"/lib64\0"
        + b"\0\0\0other\0"
        + PLACEHOLDER + b"\0"
        + b"-L" + PLACEHOLDER + b"/lib -lfoo\0tail"
    )  # fmt: skip
    moved = binary_replace(original, PLACEHOLDER, PREFIX)
    assert len(moved) == len(original) and PLACEHOLDER not in moved
    assert undo_binary(moved, PREFIX, PLACEHOLDER) == original


def test_binary_undo_keeps_a_prefix_string_without_the_padding():
    data = b"x" + PREFIX + b"/lib\0y"  # the prefix, but not written by a replacement
    assert undo_binary(data, PREFIX, PLACEHOLDER) == data


def test_text_undo_inverts_conda_pack():
    original = b"prefix=" + PLACEHOLDER + b"\nlibdir=" + PLACEHOLDER + b"/lib\n"
    assert (
        undo_text(text_replace(original, PLACEHOLDER.decode(), PREFIX.decode()), PREFIX, PLACEHOLDER)
        == original
    )
