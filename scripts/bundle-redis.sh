#!/usr/bin/env bash
# Packs this machine's redis-server and the libraries it needs (outside glibc/libstdc++) into
# .gpu-extra/redis-bundle.tar.xz, for a GPU host without Debian's redis-server: the tests of several
# ranks on one GPU meet through Redis. scripts/gpu-host.sh unpacks it there. Keep .gpu-extra out of
# git (this script adds it to .git/info/exclude) and carry it with .gpu.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
server=$(command -v redis-server) || { echo "no redis-server here: make setup installs it" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/.gpu-redis/bin" "$tmp/.gpu-redis/lib"
# redis picks its mode from argv[0]: the real binary's name must not say check-rdb/aof or sentinel.
cp -L "$server" "$tmp/.gpu-redis/lib/redis-server.real"
ldd "$server" | awk '$3 ~ /^\// {print $1, $3}' | while read -r name path; do
  case "$name" in libc.so* | libm.so* | libstdc++* | libgcc_s* | libpthread* | libdl.so* | librt.so* | ld-linux*) continue ;; esac
  cp -L "$path" "$tmp/.gpu-redis/lib/$name"
done
cat > "$tmp/.gpu-redis/bin/redis-server" <<'RUN'
#!/usr/bin/env bash
here=$(cd "$(dirname "$0")/../lib" && pwd)
LD_LIBRARY_PATH=$here exec "$here/redis-server.real" "$@"
RUN
chmod +x "$tmp/.gpu-redis/bin/redis-server"
mkdir -p .gpu-extra
tar -C "$tmp" -cf - .gpu-redis | xz -6 -T0 > .gpu-extra/redis-bundle.tar.xz
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu-extra/' "$exclude" 2>/dev/null || echo '/.gpu-extra/' >> "$exclude"
du -sh .gpu-extra/redis-bundle.tar.xz
