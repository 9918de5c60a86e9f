import { type Column, getTableColumns, type Table } from 'drizzle-orm';

/*
 * Reading whole rows with raw SQL (Database.query) where drizzle's per-row mapping costs too
 * much CPU (a resync reads every row). A table's {@link JsonRow} is derived from its drizzle
 * definition in schema/, so the columns are declared there alone: `sql` turns one row into a JSON
 * array, and `decode` turns that array into exactly the object drizzle's `select()` yields
 * (camelCase keys in column order, every column present, null for SQL NULL). Aggregated with
 * json_agg, a whole result arrives as one JSON value, which the driver parses in one go rather
 * than field by field.
 *
 * What this keeps identical to drizzle, on node-postgres and PGlite alike:
 * - Timestamps are sent as text and parsed with `new Date(text)`, as drizzle does (it turns the
 *   drivers' own timestamp parsing off). node-postgres' parser disagrees with it on years 0-99
 *   and on offsets with seconds; PGlite's would return Infinity for 'infinity'.
 * - A jsonb value that is a JSON string is parsed once more, as drizzle does.
 * - integer stays a number, text[] an array. bigint columns are refused: node-postgres returns
 *   them as strings and PGlite as numbers.
 */

type Decoder = (value: unknown) => unknown;

const asIs: Decoder = (v) => v;
const timestamp: Decoder = (v) => (v === null ? null : new Date(v as string));
const jsonb: Decoder = (v) => {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
};

export interface JsonRow<T> {
  /** The SQL expression of one row as a JSON array; use it with the table (or a CTE of its rows) as the only FROM item. */
  sql: string;
  /** The row object from that array. */
  decode(tuple: unknown[]): T;
}

export function jsonRow<T extends Table>(table: T): JsonRow<T['$inferSelect']> {
  const columns = Object.entries(getTableColumns(table)) as [string, Column][];
  const expressions: string[] = [];
  const decoders: Decoder[] = [];
  for (const [, column] of columns) {
    switch (column.columnType) {
      case 'PgTimestamp':
      case 'PgTimestampString':
        expressions.push(`${column.name}::text`);
        decoders.push(timestamp);
        break;
      case 'PgJsonb':
        expressions.push(column.name);
        decoders.push(jsonb);
        break;
      case 'PgBigInt53':
      case 'PgBigInt64':
      case 'PgBigSerial53':
      case 'PgBigSerial64':
        throw new Error(`column ${column.name}: bigint is not read as JSON (see rows.ts)`);
      default:
        expressions.push(column.name);
        decoders.push(asIs);
    }
  }
  const keys = columns.map(([key]) => key);
  return {
    sql: `json_build_array(${expressions.join(', ')})`,
    decode(tuple) {
      const row: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) row[keys[i]!] = decoders[i]!(tuple[i]);
      return row as T['$inferSelect'];
    },
  };
}
