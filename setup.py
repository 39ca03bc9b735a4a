"""Ships the product teams' data inside the wheel (the rest of the build is in pyproject.toml).

``dialogs/`` and ``locales/`` live at the top of the checkout, where product
teams and translators edit them. A wheel copies them into ``bot/data/``, where
an installed bot finds them by default (``common.i18n.shipped_dir``; the backend reads its texts from there too); an
editable install keeps reading the checkout's folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# (folder in the checkout, what to copy from it): the dialog files and their
# scripted tests, and the catalogs the bot reads (``.po``; there is no compile step).
SHIPPED = (("dialogs", ("*.yaml", "tests/*.yaml")), ("locales", ("*/LC_MESSAGES/*.po",)))


class BuildWithData(build_py):
    """``build_py`` that also copies ``dialogs/`` and ``locales/`` into ``bot/data/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for folder, patterns in SHIPPED:
            if not (HERE / folder).is_dir():
                # A wheel without them would start and fail on the first dialog: stop here.
                raise FileNotFoundError(f"{HERE / folder}: missing; a wheel needs it (MANIFEST.in)")
            for pattern in patterns:
                for source in sorted((HERE / folder).glob(pattern)):
                    target = Path(
                        self.build_lib, "bot", "data", folder, source.relative_to(HERE / folder)
                    )
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildWithData})
