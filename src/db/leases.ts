import type { Database } from './client.js';

/** Leader-election leases (runtime/lease.ts decides; this only reads and writes the rows). */
export class LeaseRepository {
  constructor(private readonly database: Database) {}

  /**
   * Takes the lease `name` for `holder`, or renews it when `holder` already has it, in one
   * statement. The expiry is set in database time. The epoch goes up whenever the lease
   * changes hands (or is taken again after it expired). Returns the epoch, or undefined when
   * another holder's lease is still valid.
   */
  async acquireOrRenew(name: string, holder: string, durationMs: number): Promise<number | undefined> {
    const rows = await this.database.query<{ epoch: string | number }>(
      `INSERT INTO leases (name, holder, epoch, acquired_at, renewed_at, expires_at)
       VALUES ($1, $2, 1, now(), now(), now() + make_interval(secs => $3::double precision / 1000))
       ON CONFLICT (name) DO UPDATE SET
         holder = EXCLUDED.holder,
         epoch = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > now() THEN leases.epoch ELSE leases.epoch + 1 END,
         acquired_at = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > now() THEN leases.acquired_at ELSE now() END,
         renewed_at = now(),
         expires_at = EXCLUDED.expires_at
       WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= now()
       RETURNING epoch`,
      [name, holder, durationMs],
    );
    return rows[0] ? Number(rows[0].epoch) : undefined;
  }

  /**
   * Says this replica is alive (a row `<group>/replica/<holder>` that expires like a lease), and
   * returns how many of the `leases` every live replica of the group holds, this one included.
   * Rows of replicas gone for an hour are removed.
   */
  async heartbeat(
    group: string,
    holder: string,
    durationMs: number,
    leases: readonly string[],
  ): Promise<Map<string, number>> {
    const prefix = `${group}/replica/`;
    const [, , rows] = await Promise.all([
      this.database.query(
        `INSERT INTO leases (name, holder, epoch, acquired_at, renewed_at, expires_at)
         VALUES ($1, $2, 1, now(), now(), now() + make_interval(secs => $3::double precision / 1000))
         ON CONFLICT (name) DO UPDATE SET renewed_at = now(), expires_at = EXCLUDED.expires_at`,
        [`${prefix}${holder}`, holder, durationMs],
      ),
      this.database.query(
        `DELETE FROM leases WHERE starts_with(name, $1) AND expires_at < now() - interval '1 hour'`,
        [prefix],
      ),
      this.database.query<{ holder: string; n: number }>(
        `SELECT r.holder,
                (SELECT count(*) FROM leases l
                  WHERE l.holder = r.holder AND l.name = ANY($2::text[]) AND l.expires_at > now())::int AS n
           FROM leases r
          WHERE starts_with(r.name, $1) AND r.expires_at > now()`,
        [prefix, leases],
      ),
    ]);
    const loads = new Map(rows.map((r) => [r.holder, Number(r.n)]));
    if (!loads.has(holder)) loads.set(holder, 0);
    return loads;
  }

  /** Gives the lease up at once (a standby may take it on its next attempt). */
  async release(name: string, holder: string): Promise<void> {
    await this.database.query(`UPDATE leases SET expires_at = now() WHERE name = $1 AND holder = $2`, [
      name,
      holder,
    ]);
  }
}
