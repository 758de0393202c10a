"""How every tenant's Ruby process boots: the environment the rendered vhosts give all of them.

One tenant's first request boots Redmine from nothing: about 4.8 CPU-seconds to the first
answer on Debian 13's Redmine 6.0, 2.7 with the Bootsnap cache (docs/benchmarks.md). Three
settings make that cheaper, or safer, for every tenant at once, each tenant still in its own
process group, sharing nothing with another but read-only files:

- `boot_cache_dir`: a Bootsnap cache (compiled Ruby and YAML, the load-path index) built once
  by docker/build-boot-cache.sh, read by every process and written by none
  (`BOOTSNAP_READONLY`, and the directory belongs to root), so a tenant's process cannot
  change what another one loads;
- `max_booting`: at most this many processes boot at once, the others wait for a place before
  loading anything (templates/redmine/redmica_boot.rb), so a burst of cold tenants on few
  vCPUs does not boot a whole pool at once into Passenger's start timeout;
- `ruby_allocator`: glibc's malloc as it is, glibc with two arenas (`MALLOC_ARENA_MAX=2`) or
  Debian's jemalloc (`LD_PRELOAD=libjemalloc.so.2`, found by the dynamic linker on any
  architecture).

The first two need config/redmica_boot.rb of `render redmine-config`, loaded before Redmine's
boot.rb through `RUBYOPT`, so Redmine's own files are not edited. Each value is a plain word or
a checked absolute path; the renderer still quotes every one.
"""

from __future__ import annotations

from dataclasses import dataclass

from redmica_ops.errors import UsageError
from redmica_ops.settings import DEFAULTS, Settings

JEMALLOC = "libjemalloc.so.2"
PRELUDE = "config/redmica_boot.rb"  # written by `render redmine-config` into the app root


@dataclass(frozen=True)
class BootSettings:
    """What every tenant process boots with (defaults: the settings' own)."""

    app_root: str = DEFAULTS.app_root
    cache_dir: str | None = DEFAULTS.boot_cache_dir
    max_booting: int = DEFAULTS.max_booting
    allocator: str = DEFAULTS.ruby_allocator

    @classmethod
    def from_settings(cls, settings: Settings, app_root: str) -> BootSettings:
        return cls(
            app_root=app_root,
            cache_dir=settings.boot_cache_dir,
            max_booting=settings.max_booting,
            allocator=settings.ruby_allocator,
        )

    def environment(self) -> list[tuple[str, str]]:
        """The variables for every tenant process, in a fixed order (same settings, same
        bytes). Raises UsageError when the prelude cannot be named in RUBYOPT."""
        env: list[tuple[str, str]] = []
        if self.cache_dir or self.max_booting:
            prelude = f"{self.app_root.rstrip('/')}/{PRELUDE}"
            if any(c.isspace() for c in prelude):
                # Ruby splits RUBYOPT at white space: the path would become two options.
                raise UsageError(
                    f"app_root {self.app_root!r} has white space: Ruby cannot load "
                    f"{PRELUDE} from it through RUBYOPT",
                    "serve Redmine from a directory without spaces, or unset boot_cache_dir "
                    "and max_booting",
                )
            env.append(("RUBYOPT", f"-r{prelude}"))
        if self.cache_dir:
            # Read, never written: one tenant's process cannot plant code for another.
            env += [("BOOTSNAP_CACHE_DIR", self.cache_dir), ("BOOTSNAP_READONLY", "1")]
        if self.max_booting:
            env.append(("REDMICA_MAX_BOOTING", str(self.max_booting)))
        if self.allocator == "arena2":
            env.append(("MALLOC_ARENA_MAX", "2"))
        elif self.allocator == "jemalloc":
            env.append(("LD_PRELOAD", JEMALLOC))
        return env
