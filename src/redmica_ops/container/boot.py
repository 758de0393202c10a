"""How every tenant's Ruby process boots: the environment the rendered vhosts give all of them.

One tenant's first request boots Redmine from nothing (measured on Debian 13's Redmine 6.0:
about 4.3 CPU-seconds before the first request, docs/benchmarks.md). Two settings make that
cheaper for every tenant at once, without sharing anything between tenants but read-only files:

- `boot_cache_dir`: a Bootsnap cache (compiled Ruby and YAML, the load-path index) built once
  by docker/build-boot-cache.sh, read by every process and written by none
  (`BOOTSNAP_READONLY`): Bootsnap is loaded before Redmine's boot.rb through `RUBYOPT`, so
  Redmine's code is not edited. A tenant process cannot change what another one loads.
- `ruby_allocator`: glibc's malloc as it is, glibc with two arenas (`MALLOC_ARENA_MAX=2`) or
  Debian's jemalloc (`LD_PRELOAD=libjemalloc.so.2`, found by the dynamic linker on any
  architecture).

Each value is a plain word or an absolute path checked by the settings; the renderer still
quotes every one.
"""

from __future__ import annotations

from dataclasses import dataclass

from redmica_ops.settings import DEFAULTS, Settings

JEMALLOC = "libjemalloc.so.2"


@dataclass(frozen=True)
class BootSettings:
    """What every tenant process boots with (defaults: the settings' own)."""

    cache_dir: str | None = DEFAULTS.boot_cache_dir
    allocator: str = DEFAULTS.ruby_allocator

    @classmethod
    def from_settings(cls, settings: Settings) -> BootSettings:
        return cls(cache_dir=settings.boot_cache_dir, allocator=settings.ruby_allocator)

    def environment(self) -> list[tuple[str, str]]:
        """The variables for every tenant process, in a fixed order (same settings, same
        bytes)."""
        env: list[tuple[str, str]] = []
        if self.cache_dir:
            env += [
                ("BOOTSNAP_CACHE_DIR", self.cache_dir),
                # Read, never written: one tenant's process cannot plant code for another.
                ("BOOTSNAP_READONLY", "1"),
                ("RUBYOPT", "-rbootsnap/setup"),
            ]
        if self.allocator == "arena2":
            env.append(("MALLOC_ARENA_MAX", "2"))
        elif self.allocator == "jemalloc":
            env.append(("LD_PRELOAD", JEMALLOC))
        return env
