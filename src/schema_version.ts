/**
 * The newest migration this build of the service was written against. /ready
 * answers 503 until the database has at least this migration; a test keeps
 * the constant equal to the newest file in db/migrations.
 */
export const EXPECTED_SCHEMA_VERSION = "20261204000900";
