"""Multi-tier rate limits (requests, tokens, concurrency) that hold across processes and hosts."""

from erp_agents.exceptions import RateLimitNeverFitsError
from erp_agents.limits.limiter import Lease, RateLimiter, limiter_for
from erp_agents.limits.tiers import Tier, tiers_for, tiers_of

__all__ = ["Lease", "RateLimitNeverFitsError", "RateLimiter", "Tier", "limiter_for", "tiers_for", "tiers_of"]
