"""The offline busybox image: built from Debian's busybox-static, the same ID every time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagegraph.service import Services
from tutorials import images


def test_busybox_image_is_reproducible_and_laid_out_like_docker_hubs(tmp_path: Path) -> None:
    svc = Services.open(tmp_path / "a")
    first = images.build_busybox(svc)
    assert images.build_busybox(Services.open(tmp_path / "b")) == first  # same ID in another store
    img = svc.get_image("busybox")
    assert img.id == first
    assert img.container_config["Cmd"] == ["sh"]
    assert img.container_config["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    layer = svc.layers.lower_dirs(img.top_chain_id)[0]
    assert os.readlink(layer / "bin" / "sh") == "busybox" and os.readlink(layer / "bin" / "ls") == "busybox"
    assert images.is_static_elf(layer / "bin" / "busybox")
    assert (layer / "etc" / "passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert "nogroup:x:65534:" in (layer / "etc" / "group").read_text()
    assert oct((layer / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert "busybox-static" in svc.history("busybox")[0]["Comment"]


def test_a_dynamic_busybox_is_refused_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert not images.is_static_elf(Path(sys.executable).resolve())
    monkeypatch.setattr(images, "BUSYBOX_PATHS", (str(Path(sys.executable).resolve()),))
    with pytest.raises(images.ImageBuildError, match="linked dynamically .* apt-get install busybox-static"):
        images.find_busybox()
    monkeypatch.setattr(images, "BUSYBOX_PATHS", (str(tmp_path / "none"),))
    with pytest.raises(images.ImageBuildError, match="busybox is not installed; install busybox-static"):
        images.find_busybox()


def test_one_command_builds_it(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "tutorials.images", "busybox", "--root", str(tmp_path / "s")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("sha256:")
    repos = json.loads((tmp_path / "s" / "image" / "layerfs" / "repositories.json").read_text())
    assert repos["Repositories"]["busybox"]["busybox:latest"] == res.stdout.strip()
