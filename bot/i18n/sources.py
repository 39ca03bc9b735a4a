"""The message template as the sources define it right now, without writing ``messages.pot``.

``datadesk locales check`` compares every catalog with this fresh extraction,
made exactly as ``pybabel extract -F babel.cfg`` makes it (same mapping, same
default keywords, same ``TRANSLATORS:`` tag), so "out of date" means what the
next ``make locales`` would change.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.frontend import parse_mapping_cfg

from common.errors import ConfigError
from common.i18n.catalogs import display_path
from common.settings import REPO_ROOT

COMMENT_TAGS = ("TRANSLATORS:",)
MAPPING_FILE = "babel.cfg"
# The dialog extractor by import path, so no installed entry point is needed.
EXTRACTOR = "bot.i18n.extract:extract_dialogs"
# The backend's texts, as babel.cfg maps them (a test holds the two together): read
# from the installed packages when there is no babel.cfg, as in an installed wheel.
BACKEND_TEXTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("backend/policies/messages.yaml", {}),
    ("backend/console/canned.yaml", {"context": "canned reply", "comment_key": "title"}),
)


def _relative(path: Path, root: Path) -> str:
    """``path`` as written in the template's location comments: relative to the project root."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return display_path(path)


def _from_mapping(catalog: Catalog, root: Path, config: Path) -> None:
    """Add what ``babel.cfg`` maps under ``root`` to ``catalog``."""
    try:
        with config.open(encoding="utf-8") as fileobj:
            # Babel ships this function without annotations.
            method_map, options_map = parse_mapping_cfg(fileobj, str(config))  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as exc:
        raise ConfigError(display_path(config), None, f"cannot be read: {exc}") from exc
    extracted = extract_from_dir(
        str(root), method_map, options_map, keywords=DEFAULT_KEYWORDS, comment_tags=COMMENT_TAGS
    )
    for filename, lineno, message, comments, context in extracted:
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)


def _from_dialogs(catalog: Catalog, root: Path, dialogs_dir: Path) -> None:
    """Add the texts of ``dialogs_dir/*.yaml`` to ``catalog`` (a folder the mapping misses)."""
    for path in sorted(dialogs_dir.glob("*.yaml")):
        extracted = extract_from_file(
            EXTRACTOR, str(path), keywords=DEFAULT_KEYWORDS, comment_tags=COMMENT_TAGS
        )
        location = _relative(path, root)
        for lineno, message, comments, context in extracted:
            catalog.add(
                message, None, [(location, lineno)], auto_comments=comments, context=context
            )


def _from_backend(catalog: Catalog, packages: Path) -> None:
    """Add the backend's YAML texts (``BACKEND_TEXTS``) found under ``packages``."""
    for name, options in BACKEND_TEXTS:
        path = packages / name
        if not path.is_file():
            continue
        extracted = extract_from_file(
            EXTRACTOR,
            str(path),
            keywords=DEFAULT_KEYWORDS,
            comment_tags=COMMENT_TAGS,
            options=options,
        )
        for lineno, message, comments, context in extracted:
            catalog.add(message, None, [(name, lineno)], auto_comments=comments, context=context)


def extract_template(root: Path, dialogs_dir: Path | None = None) -> Catalog:
    """Extract every translatable message under ``root`` (per its ``babel.cfg``) and ``dialogs_dir``.

    Raises ConfigError ``file:line: …`` when a source cannot be read (e.g. broken YAML).
    """
    catalog = Catalog(domain="messages")
    config = root / MAPPING_FILE
    mapped = config.is_file()
    if mapped:
        _from_mapping(catalog, root, config)
    else:
        # No babel.cfg (an installed wheel): the backend's texts from its installed package.
        _from_backend(catalog, REPO_ROOT)
    # babel.cfg maps root/dialogs; a DATADESK_DIALOGS_DIR elsewhere is read on its own.
    if dialogs_dir is not None and not (
        mapped and dialogs_dir.resolve() == (root / "dialogs").resolve()
    ):
        _from_dialogs(catalog, root, dialogs_dir)
    return catalog
