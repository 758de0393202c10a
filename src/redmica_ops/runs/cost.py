"""Fargate cost of a batch of tasks, per-minute prices as in the talk (docs/release-day.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostEstimate:
    tasks: int
    vcpu: float
    memory_gb: float
    minutes: float
    vcpu_usd: float
    memory_usd: float

    @property
    def total_usd(self) -> float:
        return self.vcpu_usd + self.memory_usd

    def as_dict(self) -> dict[str, float | int]:
        return {
            "tasks": self.tasks,
            "vcpu": self.vcpu,
            "memory_gb": self.memory_gb,
            "minutes": self.minutes,
            "vcpu_usd": round(self.vcpu_usd, 7),
            "memory_usd": round(self.memory_usd, 7),
            "total_usd": round(self.total_usd, 4),
        }


def estimate(
    tasks: int,
    vcpu: float,
    memory_gb: float,
    minutes: float,
    price_vcpu_minute: float,
    price_gb_minute: float,
) -> CostEstimate:
    """tasks x vCPU x price x minutes + tasks x GB x price x minutes."""
    return CostEstimate(
        tasks,
        vcpu,
        memory_gb,
        minutes,
        vcpu_usd=tasks * vcpu * price_vcpu_minute * minutes,
        memory_usd=tasks * memory_gb * price_gb_minute * minutes,
    )
