/**
 * The audit trail's partition maintenance (migration 20261201001300): at
 * start and every ten minutes the service asks PostgreSQL to make the coming
 * months' partitions of the trail, and logs the months every tenant's
 * retention has passed, which the owner drops (scripts/db maintain). A call
 * with nothing to do does nothing, so several processes may all call it.
 */
import type { DatabasePool } from "./db.ts";
import { log } from "./log.ts";

/**
 * How often the service runs the maintenance. Partitions are made three
 * months ahead, so this is not for them: each run also ends a session of
 * the service's roles left holding the trail after an unfinished call of
 * its own, which would otherwise hold up the Platform's tenant changes.
 */
export const AUDIT_MAINTENANCE_INTERVAL_MS = 10 * 60 * 1000;

/**
 * Runs the maintenance once and logs what it did; a failure is logged and
 * left to the next run.
 *
 * @param pool the app pool (app_user may call core.maintain_audit_partitions)
 */
export async function maintainAuditPartitions(pool: DatabasePool): Promise<void> {
  try {
    const done = await pool.withConnection((sql) =>
      sql`select action, partition_name from core.maintain_audit_partitions()`
    );
    for (const { action, partition_name } of done) {
      if (action === "expired") {
        // Dropping it is the owner's job (core.purge_audit_partitions): the
        // service's role must never hold the trail locked as a drop does.
        log("warn", "audit partition past retention; scripts/db maintain drops it", {
          partition: partition_name,
        });
      } else {
        log("info", `audit partition ${action}`, { partition: partition_name });
      }
    }
  } catch (error) {
    log("warn", "audit partition maintenance failed; it runs again within ten minutes", {
      code: (error as { code?: string }).code ?? (error as Error).name,
    });
  }
}

/**
 * Runs the maintenance now and then every ten minutes, until the returned function
 * is called. The timer never keeps the process alive on its own.
 *
 * @param pool the app pool
 * @returns a function that stops the schedule
 */
export function scheduleAuditMaintenance(pool: DatabasePool): () => void {
  maintainAuditPartitions(pool);
  const timer = setInterval(() => maintainAuditPartitions(pool), AUDIT_MAINTENANCE_INTERVAL_MS);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
