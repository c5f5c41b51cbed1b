"""`make demo`: the seed's fruits/vegetables union mount, step by step, with real commands.

Each step prints the shell command it runs, its output, and one line on what it shows. With
FUSE it mounts for real, the aufs way (`mount -t fuse.layerfs -o dirs=./fruits:./vegetables
none ./mnt`); without FUSE it shows the same merged view through `layerfs tree`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

OPTIONS = "dirs=./fruits:./vegetables"


@dataclass
class Demo:
    """Runs shell commands in a scratch folder and prints them like a terminal session."""

    workdir: str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    step: int = 0

    def say(self, text: str) -> None:
        self.step += 1
        print(f"\n# {self.step}. {text}", flush=True)

    def run(self, command: str, check: bool = True) -> str:
        print(f"$ {command}", flush=True)
        result = subprocess.run(
            command,
            shell=True,
            cwd=self.workdir,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
        if check and result.returncode != 0:
            raise RuntimeError(f"'{command}' failed with exit status {result.returncode}")
        return result.stdout


def fuse_reason() -> str | None:
    """Why a real mount cannot be shown here (None: it can)."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "fusermount3 is missing (apt-get install fuse3)"
    return None


def layerfs_command() -> str:
    """The `layerfs` program next to this Python (the venv's), so the demo needs no PATH set-up."""
    candidate = os.path.join(os.path.dirname(sys.executable), "layerfs")
    return candidate if os.path.exists(candidate) else f"{sys.executable} -m unionfs"


def build_layers(demo: Demo) -> None:
    demo.say("Two ordinary directories, as in the seed: fruits and vegetables both have a tomato.")
    demo.run("mkdir fruits vegetables mnt")
    demo.run("echo 'apple (fruits)' > fruits/apple; echo 'tomato (fruits)' > fruits/tomato")
    demo.run("echo 'carrots (vegetables)' > vegetables/carrots; echo 'tomato (vegetables)' > vegetables/tomato")
    demo.run("tree fruits vegetables" if shutil.which("tree") else "ls -R fruits vegetables")


def mounted_demo(demo: Demo, layerfs: str) -> None:
    use_mount8 = os.geteuid() == 0 and shutil.which("layerfs") is not None
    demo.say("Union-mount them the aufs way. The first branch (fruits) is writable, the rest read-only.")
    if use_mount8:
        demo.run(f"mount -t fuse.layerfs -o {OPTIONS} none ./mnt")
    else:
        demo.run(f"{layerfs} -o {OPTIONS} none ./mnt")
    try:
        demo.say("The merged view: three names; tomato comes from fruits, the higher branch.")
        demo.run("tree ./mnt" if shutil.which("tree") else "ls ./mnt")
        demo.run("cat mnt/tomato")
        demo.run("getfattr --absolute-names -n user.layerfs.origin mnt/tomato mnt/carrots", check=False)

        demo.say(
            "Change carrots, which lives only in the read-only vegetables: copy-on-write copies it up into fruits."
        )
        demo.run("echo 'now with dip' >> mnt/carrots")
        demo.run("ls fruits")
        demo.run("cat fruits/carrots")
        demo.run("cat vegetables/carrots")

        demo.say("Delete carrots: fruits gets a whiteout, .wh.carrots; vegetables is untouched.")
        demo.run("rm mnt/carrots")
        demo.run("ls -a fruits")
        demo.run("ls vegetables")
        demo.run("tree ./mnt" if shutil.which("tree") else "ls ./mnt")
    finally:
        demo.say("Unmount. The layers keep every change; the mount point is empty again.")
        demo.run("umount ./mnt" if use_mount8 else f"{layerfs} umount ./mnt")
        demo.run("ls -a fruits")


def library_demo(demo: Demo, layerfs: str, reason: str) -> None:
    demo.say(f"No real mount here ({reason}): the same union logic prints the merged view.")
    demo.run(f"{layerfs} tree -o {OPTIONS} --label ./mnt")
    demo.run(f"{layerfs} tree --origin -o {OPTIONS}")
    demo.run(f"{layerfs} explain -o {OPTIONS} /tomato")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="layerlab-demo-") as workdir:
        demo = Demo(workdir, env={**os.environ, "LC_ALL": "C.UTF-8"})
        print(f"layerlab demo: the seed's union mount example, in {workdir}")
        layerfs = layerfs_command()
        try:
            build_layers(demo)
            reason = fuse_reason()
            if reason is None:
                mounted_demo(demo, layerfs)
            else:
                library_demo(demo, layerfs, reason)
        except RuntimeError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
        finally:
            _unmount_quietly(os.path.join(workdir, "mnt"))
    print("\nDone: the scratch folder is removed.")
    return 0


def _unmount_quietly(mountpoint: str) -> None:
    """Never leave a mount behind, even when a step failed."""
    if os.path.ismount(mountpoint):
        for command in (["fusermount3", "-u", mountpoint], ["umount", mountpoint], ["umount", "-l", mountpoint]):
            if shutil.which(command[0]) and subprocess.run(command, capture_output=True).returncode == 0:
                break
        for _ in range(50):
            if not os.path.ismount(mountpoint):
                break
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
