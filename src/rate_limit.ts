/**
 * Requests per minute per tenant, from its plan. The budget lives in
 * PostgreSQL (api.lease_requests, migration 20261201001600), which leases
 * it in slices; this process spends a slice one request at a time, without
 * touching the database, and asks for the next slice when it is spent. So
 * however many processes serve a tenant, the tenant is never served more
 * than its limit in a minute, and a request costs a database write only
 * once per slice.
 *
 * A key's tenant never changes, so the tenant of each key this process has
 * seen is remembered for a minute (a bounded number of them); a key it has
 * not seen in that time is authenticated again by a lease, which names the
 * tenant. A request that turns out to have a key that is no longer valid
 * (revoked, expired: a 401) gives its request back and the key is
 * forgotten, so such a key never spends its tenant's minute nor learns
 * anything of it after that.
 */
import { HttpError } from "./http/problem.ts";

/** What api.lease_requests answered. */
export interface Lease {
  tenantId: string;
  granted: number;
  limit: number;
  /** What the database had left to lease after this slice. */
  remaining: number;
  resetsInMs: number;
}

/**
 * Leases a slice of the tenant of the key with this hash (authenticating
 * the key): at most `most` requests, or a whole slice when it is null.
 */
export type LeaseRequests = (keyHash: string, most: number | null) => Promise<Lease>;

/** The problem type of a 429. */
export const RATE_LIMITED = "https://tenancy.dev/problems/rate-limited";

// This process's part of one tenant's budget, for the current minute.
interface Budget {
  limit: number;
  /** Requests of the slices leased that are not spent yet. */
  tokens: number;
  /** What the database had left to lease when it was last asked (NaN: not asked yet). */
  remaining: number;
  /** When the minute ends, on this process's clock (performance.now()). */
  endsAt: number;
  /** A lease is under way: requests waiting for it wait for the same one. */
  leasing?: Promise<void>;
}

// Enough for every key of a large platform's active tenants; beyond it the
// oldest are forgotten (and authenticated again by their next lease).
const KNOWN_KEYS_MAX = 100_000;
// How long a key's tenant is taken as known without a lease authenticating
// the key again.
const KNOWN_KEY_MS = 60_000;
// A key not authenticated for this long is authenticated again before it is
// answered 429, so that a revoked key is answered 401.
const RECHECK_BEFORE_REFUSING_MS = 5_000;

/** One request let through: the headers for its response, and how to take it back. */
export interface Admission {
  headers: Record<string, string>;
  /** The request's key was not valid after all (401): the request is given back and the key forgotten. */
  unauthorized(): void;
}

/** One process's spending of its tenants' request budgets. */
export class RateLimiter {
  readonly #lease: LeaseRequests;
  readonly #tenantOfKey = new Map<string, { tenantId: string; since: number }>();
  readonly #budgets = new Map<string, Budget>();
  // A lease that authenticates a key, shared by the key's requests that wait for it.
  readonly #authentications = new Map<string, Promise<void>>();

  /** @param lease how a slice is leased from the database */
  constructor(lease: LeaseRequests) {
    this.#lease = lease;
  }

  /**
   * Spends one request of the key's tenant's budget, leasing a slice first
   * when this process holds none.
   *
   * @param keyHash hash of the request's API key
   * @returns the RateLimit-Policy and RateLimit headers for the response, and a way to give the request back
   * @throws HttpError 429 (with Retry-After) when the tenant's minute is spent;
   *   whatever the lease raised (401 for a key that is not valid, 503 ...)
   */
  async admit(keyHash: string): Promise<Admission> {
    for (;;) {
      const known = this.#tenantOfKey.get(keyHash);
      const now = performance.now();
      if (!known || now - known.since >= KNOWN_KEY_MS) {
        // A key not seen for a minute (or never) is authenticated by a
        // lease that takes nothing: it names the key's tenant, and what
        // that tenant has left.
        await this.#authenticate(keyHash);
        continue;
      }
      let budget = this.#current(known.tenantId);
      if (!budget) {
        // Nothing known of this minute yet: a placeholder, so that the
        // tenant's requests share one lease.
        budget = { limit: 0, tokens: 0, remaining: Number.NaN, endsAt: now + KNOWN_KEY_MS };
        this.#budgets.set(known.tenantId, budget);
      }
      if (budget.tokens > 0) {
        budget.tokens--;
        const spent = budget;
        return {
          headers: headersOf(spent),
          unauthorized: () => {
            this.#tenantOfKey.delete(keyHash);
            spent.tokens++;
          },
        };
      }
      if (!budget.leasing && budget.remaining === 0) {
        // A key is told its tenant's minute is spent only once it has been
        // found valid lately: a revoked key gets its 401 instead.
        if (now - known.since > RECHECK_BEFORE_REFUSING_MS) {
          await this.#authenticate(keyHash);
          continue;
        }
        throw rateLimited(budget);
      }
      try {
        await (budget.leasing ??= this.#leaseFor(keyHash, null, budget));
      } catch (error) {
        // Another key's lease found that key no longer valid: this key
        // leases for itself on the next pass.
        if (error instanceof HttpError && error.status === 401 && this.#tenantOfKey.has(keyHash)) continue;
        throw error;
      }
    }
  }

  #authenticate(keyHash: string): Promise<void> {
    let pending = this.#authentications.get(keyHash);
    if (!pending) {
      pending = this.#leaseFor(keyHash, 0).finally(() => this.#authentications.delete(keyHash));
      this.#authentications.set(keyHash, pending);
    }
    return pending;
  }

  // The tenant's budget for the current minute, if this process has one.
  #current(tenantId: string): Budget | undefined {
    const budget = this.#budgets.get(tenantId);
    if (budget && performance.now() >= budget.endsAt && !budget.leasing) {
      this.#budgets.delete(tenantId);
      return undefined;
    }
    return budget;
  }

  async #leaseFor(keyHash: string, most: number | null, budget?: Budget): Promise<void> {
    try {
      const asked = performance.now();
      let lease: Lease;
      try {
        lease = await this.#lease(keyHash, most);
      } catch (error) {
        if (error instanceof HttpError && error.status === 401) this.#tenantOfKey.delete(keyHash);
        throw error;
      }
      this.#remember(keyHash, lease.tenantId);
      // Counted from when the lease was asked for, the minute ends here no
      // later than in the database.
      const endsAt = asked + lease.resetsInMs;
      const held = budget ?? this.#current(lease.tenantId);
      // Two leases of one minute agree on its end but for their latencies;
      // a lease of the next minute ends a minute later, and the tokens of
      // the minute before are not carried into it.
      const sameMinute = held !== undefined && !Number.isNaN(held.remaining) &&
        Math.abs(held.endsAt - endsAt) < 30_000 && performance.now() < held.endsAt;
      const next = held ?? { limit: 0, tokens: 0, remaining: 0, endsAt };
      next.tokens = sameMinute ? next.tokens + lease.granted : lease.granted;
      next.limit = lease.limit;
      next.remaining = lease.remaining;
      next.endsAt = sameMinute ? Math.min(next.endsAt, endsAt) : endsAt;
      this.#budgets.set(lease.tenantId, next);
    } finally {
      if (budget) budget.leasing = undefined;
    }
  }

  #remember(keyHash: string, tenantId: string): void {
    this.#tenantOfKey.delete(keyHash);
    if (this.#tenantOfKey.size >= KNOWN_KEYS_MAX) {
      // Map keeps insertion order, so the first entry is the oldest.
      this.#tenantOfKey.delete(this.#tenantOfKey.keys().next().value!);
    }
    this.#tenantOfKey.set(keyHash, { tenantId, since: performance.now() });
  }
}

function secondsLeft(budget: Budget): number {
  return Math.max(1, Math.ceil((budget.endsAt - performance.now()) / 1000));
}

// RateLimit-Policy and RateLimit as draft-ietf-httpapi-ratelimit-headers
// has them: the policy's quota and window, and what is left of it. What is
// left is this process's view (its unspent slice and what the database had
// left at its last lease); other processes may have spent some since.
function headersOf(budget: Budget): Record<string, string> {
  return {
    "ratelimit-policy": policyOf(budget),
    "ratelimit": `"tenant";r=${budget.tokens + budget.remaining};t=${secondsLeft(budget)}`,
  };
}

// The policy: the tenant's limit per window of 60 s.
function policyOf(budget: Budget): string {
  return `"tenant";q=${budget.limit};w=60`;
}

function rateLimited(budget: Budget): HttpError {
  const retryAfter = secondsLeft(budget);
  return new HttpError(
    429,
    `The tenant's plan allows ${budget.limit} requests per minute and this minute's are spent; retry in ${retryAfter} s`,
    {
      type: RATE_LIMITED,
      extensions: { limit: budget.limit, window_seconds: 60, retry_after_seconds: retryAfter },
      headers: {
        "retry-after": String(retryAfter),
        "ratelimit-policy": policyOf(budget),
        "ratelimit": `"tenant";r=0;t=${retryAfter}`,
      },
    },
  );
}
