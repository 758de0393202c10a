#!/bin/sh
# Build step: the Bootsnap cache every tenant's process boots from (setting boot_cache_dir;
# docs/container.md, "Cold starts"). Redmine is booted once in production, as a tenant's
# process boots, with Bootsnap writing: the compiled Ruby of everything it loads, the YAML of
# every locale and the load-path index go to CACHE_DIR. Then the cache is made read-only to
# everyone but its owner (root): the tenants' processes read it with BOOTSNAP_READONLY=1 and
# cannot write it, so no tenant can change what another one loads.
#
# No database is needed (Redmine does not connect while booting) and no secret is used: the
# database settings are placeholders and SECRET_KEY_BASE a throw-away value, because the
# shipped initializer refuses to boot without one. The image builds it in Dockerfile.redmine;
# bench/density.py builds it the same way in the Debian 13 root.
# Usage: build-boot-cache.sh APP_ROOT CACHE_DIR   (CACHE_DIR is replaced)
set -eu

fail() {
  echo "build-boot-cache: $*" >&2
  exit 1
}

[ $# -eq 2 ] || fail "usage: build-boot-cache.sh APP_ROOT CACHE_DIR"
app_root=$1
cache_dir=$2
case $cache_dir in
  /*) ;;
  *) fail "CACHE_DIR must be an absolute path, got '$cache_dir'" ;;
esac
[ -f "$app_root/config/environment.rb" ] || fail "$app_root has no config/environment.rb"
ruby -e 'require "bootsnap"' 2>/dev/null || fail "Bootsnap is not installed (Debian: ruby-bootsnap)"

rm -rf "$cache_dir"
mkdir -p "$cache_dir"
cd "$app_root"
# Only what the boot needs reaches it; the build's own environment (and anything secret in
# it) stays out.
env -i PATH="/usr/local/bin:/usr/bin:/bin" HOME=/tmp LANG=C.UTF-8 RAILS_ENV=production \
  BOOTSNAP_CACHE_DIR="$cache_dir" RUBYOPT=-rbootsnap/setup \
  RAILS_DB=boot_cache RAILS_DB_USERNAME=boot_cache RAILS_DB_PASSWORD=boot_cache \
  RAILS_DB_HOST=127.0.0.1 S3_BUCKET_NAME=boot-cache S3_FOLDER_NAME=boot-cache \
  REDMICA_TENANT=_boot_cache SECRET_KEY_BASE=boot-cache-build-only-not-a-secret \
  ruby -e '
    require "./config/environment"
    # Every locale file, as the first request that translates would load them.
    I18n.backend.send(:init_translations) if I18n.backend.respond_to?(:init_translations, true)
    puts "build-boot-cache: Redmine #{Redmine::VERSION} booted, #{$LOADED_FEATURES.size} files loaded"
  '
for part in load-path-cache compile-cache-iseq; do
  [ -e "$cache_dir/bootsnap/$part" ] || fail "the boot wrote no $part under $cache_dir"
done
# The per-tenant Rails caches the boot may have made under the app root are not kept.
rm -rf "$app_root/tmp/cache/tenants/_boot_cache"
chown -R 0:0 "$cache_dir"
chmod -R u=rwX,go=rX "$cache_dir"
echo "build-boot-cache: $(du -sh "$cache_dir" | cut -f1) in $cache_dir (read-only to tenants)"
