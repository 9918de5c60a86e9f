CREATE TABLE "pin_changes" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"pin" text NOT NULL,
	"runtime" text NOT NULL,
	"region" text,
	"action" text NOT NULL,
	"old_value" text,
	"new_value" text,
	"actor" text NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "pin_changes_pin" CHECK ("pin_changes"."pin" IN ('runtime_image', 'ami')),
	CONSTRAINT "pin_changes_action" CHECK ("pin_changes"."action" IN ('set', 'unset'))
);
--> statement-breakpoint
CREATE INDEX "pin_changes_pin_idx" ON "pin_changes" USING btree ("pin","runtime","region","id");--> statement-breakpoint
-- A pin change wakes the controllers through LISTEN molecule_desired like any desired-state change:
-- they drop their cached pins and queue the owners the pin applies to. A write that leaves the
-- value as it was (only updated_at) says nothing.
CREATE OR REPLACE FUNCTION molecule_notify_pin() RETURNS trigger AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  IF TG_TABLE_NAME = 'runtime_image_pins' THEN
    IF TG_OP = 'UPDATE' AND NEW.image IS NOT DISTINCT FROM OLD.image AND NEW.runtime = OLD.runtime THEN
      RETURN NULL;
    END IF;
    PERFORM pg_notify('molecule_desired', json_build_object('kind', 'pin', 'pin', 'runtime_image', 'runtime', r.runtime, 'op', TG_OP)::text);
    IF TG_OP = 'UPDATE' AND NEW.runtime <> OLD.runtime THEN
      PERFORM pg_notify('molecule_desired', json_build_object('kind', 'pin', 'pin', 'runtime_image', 'runtime', OLD.runtime, 'op', TG_OP)::text);
    END IF;
  ELSE
    IF TG_OP = 'UPDATE' AND NEW.ami_id IS NOT DISTINCT FROM OLD.ami_id AND NEW.runtime = OLD.runtime AND NEW.region = OLD.region THEN
      RETURN NULL;
    END IF;
    PERFORM pg_notify('molecule_desired', json_build_object('kind', 'pin', 'pin', 'ami', 'runtime', r.runtime, 'region', r.region, 'op', TG_OP)::text);
    IF TG_OP = 'UPDATE' AND (NEW.runtime <> OLD.runtime OR NEW.region <> OLD.region) THEN
      PERFORM pg_notify('molecule_desired', json_build_object('kind', 'pin', 'pin', 'ami', 'runtime', OLD.runtime, 'region', OLD.region, 'op', TG_OP)::text);
    END IF;
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER runtime_image_pins_notify AFTER INSERT OR UPDATE OR DELETE ON runtime_image_pins FOR EACH ROW EXECUTE FUNCTION molecule_notify_pin();
--> statement-breakpoint
CREATE TRIGGER ami_pins_notify AFTER INSERT OR UPDATE OR DELETE ON ami_pins FOR EACH ROW EXECUTE FUNCTION molecule_notify_pin();
