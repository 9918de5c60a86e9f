-- Spec changes bump `generation`; every change stamps `updated_at`.
CREATE OR REPLACE FUNCTION molecule_orgs_touch() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := now();
  IF NEW.name IS DISTINCT FROM OLD.name
     OR NEW.is_canary IS DISTINCT FROM OLD.is_canary
     OR NEW.power_state IS DISTINCT FROM OLD.power_state
     OR NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at THEN
    NEW.generation := OLD.generation + 1;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION molecule_workspaces_touch() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := now();
  IF NEW.name IS DISTINCT FROM OLD.name
     OR NEW.runtime IS DISTINCT FROM OLD.runtime
     OR NEW.tier IS DISTINCT FROM OLD.tier
     OR NEW.power_state IS DISTINCT FROM OLD.power_state
     OR NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at THEN
    NEW.generation := OLD.generation + 1;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER orgs_touch BEFORE UPDATE ON orgs FOR EACH ROW EXECUTE FUNCTION molecule_orgs_touch();
--> statement-breakpoint
CREATE TRIGGER workspaces_touch BEFORE UPDATE ON workspaces FOR EACH ROW EXECUTE FUNCTION molecule_workspaces_touch();
--> statement-breakpoint
-- Every desired-state change (insert, delete, spec change, purge) wakes the controllers through
-- LISTEN molecule_desired. Finalizer bookkeeping does not: the reconciler wakes what waits on it.
CREATE OR REPLACE FUNCTION molecule_notify_desired() RETURNS trigger AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.generation = OLD.generation AND NEW.purged_at IS NOT DISTINCT FROM OLD.purged_at THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  IF TG_TABLE_NAME = 'orgs' THEN
    PERFORM pg_notify('molecule_desired', json_build_object('kind', 'org', 'id', r.id, 'orgId', r.id, 'op', TG_OP)::text);
  ELSE
    PERFORM pg_notify('molecule_desired', json_build_object('kind', 'workspace', 'id', r.id, 'orgId', r.org_id, 'op', TG_OP)::text);
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER orgs_notify AFTER INSERT OR UPDATE OR DELETE ON orgs FOR EACH ROW EXECUTE FUNCTION molecule_notify_desired();
--> statement-breakpoint
CREATE TRIGGER workspaces_notify AFTER INSERT OR UPDATE OR DELETE ON workspaces FOR EACH ROW EXECUTE FUNCTION molecule_notify_desired();
