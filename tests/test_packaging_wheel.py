"""A wheel built from the checkout runs on its own: no editable install, no checkout on the path.

The wheel is built with ``uv build`` from a copy of the project, installed
into a fresh virtualenv outside the checkout, and run from an empty folder.
Its dependencies come from this ``.venv`` (a ``.pth`` file names its
site-packages, whose own ``.pth`` files, such as the editable install's finder,
are not processed), so nothing is downloaded but what ``uv build`` needs.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

from common.settings import REPO_ROOT

UV = Path(sys.executable).parent / "uv"
# What `uv build` reads: the project's metadata, its packages and the data it ships.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "alembic.ini", "README.md", "bot", "backend", "common", "datadesk", "dialogs", "locales")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _install_wheel(tmp_path: Path) -> Path:
    """Build the sdist and the wheel, and install the wheel into a fresh virtualenv; its ``bin`` folder."""
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    # As a release is built: the source distribution first, the wheel from it.
    _run(UV, "build", "--quiet", "--out-dir", tmp_path / "dist", cwd=source)
    (wheel,) = (tmp_path / "dist").glob("datadesk-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
    )
    (Path(purelib.strip()) / "datadesk-dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    _run(UV, "pip", "install", "--offline", "--no-deps", "--quiet", "--python", python, wheel, cwd=tmp_path)  # fmt: skip
    return venv / "bin"


async def _chat(datadesk: Path, cwd: Path, env: dict[str, str]) -> str:
    """A demo customer stops marketing everywhere through ``datadesk run --chat``; the screen."""
    process = await asyncio.create_subprocess_exec(
        datadesk, "run", "--chat", "--as", "C-1101", "--lang", "en",
        cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    assert process.stdout is not None
    screen = ""

    async def until(pattern: str) -> re.Match[str]:
        nonlocal screen
        async with asyncio.timeout(60):
            while (found := re.search(pattern, screen)) is None:
                line = await process.stdout.readline()  # type: ignore[union-attr]
                assert line, f"the chat ended before {pattern!r}:\n{screen}"
                screen += line.decode()
        return found

    async def say(line: str) -> None:
        process.stdin.write(f"{line}\n".encode())  # type: ignore[union-attr]
        await process.stdin.drain()  # type: ignore[union-attr]

    try:
        await until("What would you like to do")
        await say("marketing_opt_out")
        await until(r"\[share\]")
        await say("share")
        code = await until(r"one-time code is (\d{6})")
        await say(code.group(1))
        await until(r"\[all\]")
        await say("all")
        await until(r"\[yes\]")
        await say("yes")
        await until(r"DD-[0-9A-Z]{6}")
        await say("/quit")
        async with asyncio.timeout(60):
            _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        return screen
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_a_wheel_installed_outside_the_checkout_checks_its_data_and_serves_a_chat(
    tmp_path: Path,
) -> None:
    bin_dir = _install_wheel(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATADESK_", "PYTHON"))}
    env |= {
        "DATADESK_DATA_DIR": str(work / "var"),
        "DATADESK_HTTP_PORT": str(_free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    site = _run(bin_dir / "python", "-c", "import bot; print(bot.__file__)", cwd=work, env=env)
    assert site.startswith(str(tmp_path / "venv")), site
    with_checkout = _run(bin_dir / "python", "-c", "import sys; print(sys.path)", cwd=work, env=env)
    assert str(REPO_ROOT) not in with_checkout.replace(str(REPO_ROOT / ".venv"), "")

    dialogs = _run(bin_dir / "datadesk", "dialogs", "check", cwd=work, env=env)
    assert dialogs.startswith("dialogs check: OK"), dialogs
    assert f"in {tmp_path / 'venv'}" in dialogs
    assert dialogs.rstrip().endswith("bot/data/dialogs")
    locales = _run(bin_dir / "datadesk", "locales", "check", cwd=work, env=env)
    assert "5 locales (en, lv, ru, zh_Hans, zh_Hant)" in locales
    assert "all translated" in locales

    _run(bin_dir / "datadesk", "db", "upgrade", cwd=work, env=env)
    _run(bin_dir / "datadesk", "crm", "seed-demo", cwd=work, env=env)
    screen = asyncio.run(_chat(bin_dir / "datadesk", work, env))
    assert "Where would you like us to stop" in screen
    assert "straight away" in screen
