CREATE TABLE "rollout_resumes" (
	"image" text PRIMARY KEY NOT NULL,
	"resumed_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "redeploy_generation" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "redeploy_generation" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- An explicit redeploy is a spec change: it bumps `generation`, so the desired-row trigger wakes the controllers.
CREATE OR REPLACE FUNCTION molecule_orgs_touch() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := now();
  IF NEW.name IS DISTINCT FROM OLD.name
     OR NEW.is_canary IS DISTINCT FROM OLD.is_canary
     OR NEW.power_state IS DISTINCT FROM OLD.power_state
     OR NEW.redeploy_generation IS DISTINCT FROM OLD.redeploy_generation
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
     OR NEW.redeploy_generation IS DISTINCT FROM OLD.redeploy_generation
     OR NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at THEN
    NEW.generation := OLD.generation + 1;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
