"""Containers that run: Docker's runtime path (daemon → containerd-shim → runc), in small modules.

Standard library only; the system calls Python lacks go through `ctypes` in `syscalls`.

- `syscalls`: unshare, setns, mount, umount2, pivot_root, capget/capset, prctl
  (golang.org/x/sys/unix).
- `network`: the container's hosts, hostname and resolv.conf; the loopback link
  (libnetwork etchosts, resolvconf).
- `spec`: Docker's defaults (capabilities, mounts, masked and read-only paths) and one
  container's spec (moby oci/defaults.go, oci_linux.go).
- `rootfs`: the mount namespace: the union as `/` by pivot_root, /proc, /dev, /sys, the /etc
  binds (runc libcontainer/rootfs_linux.go).
- `process`: user, env, workdir, capabilities, no_new_privs, exec (runc standard_init_linux.go).
- `cgroups`: limits where the machine lets us set them (v2, or v1), one line where it does not.
- `jsonlog`: the json-file log driver's format (moby daemon/logger/jsonfilelog).
- `stream`: the framed stream between a monitor and its clients (moby stdcopy's header).
- `state`: State as Docker shows it; liveness; Exited (255) after a crash (moby container/state.go).
- `monitor`: one small process per running container, containerd-shim's role: it holds the
  stdio, writes the log, reaps the process and records its exit.
- `nsexec`: a process that joins a running container's namespaces (exec).
- `manager`: start, stop, kill, restart, wait, attach, logs, exec, top: what the CLI and the
  daemon call.
"""
