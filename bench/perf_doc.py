"""Shared by the bench scripts: each owns one marked section of docs/PERFORMANCE.md."""

import pathlib

DOC = pathlib.Path(__file__).resolve().parents[1] / 'docs' / 'PERFORMANCE.md'


def section_markers(name: str) -> tuple:
    """Return the HTML comments that delimit bench `name`'s section."""
    return f'<!-- {name}:begin -->', f'<!-- {name}:end -->'


def write_section(path: pathlib.Path, name: str, body: str) -> None:
    """Replace bench `name`'s section of `path` with `body` (append it if missing)."""
    begin, end = section_markers(name)
    block = f'{begin}\n{body.strip()}\n{end}'
    text = path.read_text() if path.exists() else '# Performance\n'
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip('\n') + '\n\n' + block + '\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
