-- A resumed rollout wakes the operator: the owners it held back may go at once.
CREATE OR REPLACE FUNCTION molecule_notify_rollout() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('molecule_desired', json_build_object('kind', 'rollout', 'image', NEW.image, 'op', TG_OP)::text);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER rollout_resumes_notify AFTER INSERT OR UPDATE ON rollout_resumes FOR EACH ROW EXECUTE FUNCTION molecule_notify_rollout();
