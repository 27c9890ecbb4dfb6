# Per-instance cgroup limits for real (issue 11): memory-max OOM-kills a whole instance,
# pids-max holds a fork bomb at 64, cpu-max holds a busy loop at 20 % — tests/realhost/limits.sh,
# which records its own checks and leaves alice's stack as it found it.
bash "${REALHOST_SHARE:-/mnt/share}/tests/realhost/limits.sh"
