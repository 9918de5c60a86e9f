CREATE TABLE "ami_pins" (
	"runtime" text NOT NULL,
	"region" text NOT NULL,
	"ami_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ami_pins_runtime_region_pk" PRIMARY KEY("runtime","region")
);
--> statement-breakpoint
CREATE TABLE "leases" (
	"name" text PRIMARY KEY NOT NULL,
	"holder" text NOT NULL,
	"epoch" bigint NOT NULL,
	"acquired_at" timestamp with time zone NOT NULL,
	"renewed_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "orgs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"slug" text NOT NULL,
	"name" text NOT NULL,
	"is_canary" boolean DEFAULT false NOT NULL,
	"power_state" text DEFAULT 'running' NOT NULL,
	"generation" integer DEFAULT 1 NOT NULL,
	"deletion_requested_at" timestamp with time zone,
	"finalizers" text[] DEFAULT '{}'::text[] NOT NULL,
	"purged_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "orgs_slug_format" CHECK ("orgs"."slug" ~ '^[a-z0-9]([a-z0-9-]{1,30})[a-z0-9]$'),
	CONSTRAINT "orgs_power_state" CHECK ("orgs"."power_state" IN ('running', 'stopped'))
);
--> statement-breakpoint
CREATE TABLE "orphans" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"external_id" text NOT NULL,
	"env" text NOT NULL,
	"owner_kind" text,
	"owner_id" text,
	"reason" text NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"first_seen" timestamp with time zone NOT NULL,
	"last_seen" timestamp with time zone NOT NULL,
	"resolved_at" timestamp with time zone,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "reconcile_status" (
	"controller" text NOT NULL,
	"owner_id" uuid NOT NULL,
	"owner_kind" text NOT NULL,
	"org_id" uuid NOT NULL,
	"ready" boolean DEFAULT false NOT NULL,
	"reason" text DEFAULT 'Pending' NOT NULL,
	"message" text DEFAULT '' NOT NULL,
	"observed_generation" integer DEFAULT 0 NOT NULL,
	"external_ids" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"state" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"pending" jsonb,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"next_attempt_at" timestamp with time zone,
	"last_reconciled_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "reconcile_status_controller_owner_id_pk" PRIMARY KEY("controller","owner_id")
);
--> statement-breakpoint
CREATE TABLE "runtime_image_pins" (
	"runtime" text PRIMARY KEY NOT NULL,
	"image" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tenant_resources" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"owner_kind" text NOT NULL,
	"owner_id" uuid,
	"org_id" uuid,
	"kind" text NOT NULL,
	"external_id" text NOT NULL,
	"controller" text NOT NULL,
	"action" text NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "workspaces" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"name" text NOT NULL,
	"runtime" text NOT NULL,
	"tier" integer NOT NULL,
	"power_state" text DEFAULT 'running' NOT NULL,
	"generation" integer DEFAULT 1 NOT NULL,
	"deletion_requested_at" timestamp with time zone,
	"finalizers" text[] DEFAULT '{}'::text[] NOT NULL,
	"purged_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "workspaces_power_state" CHECK ("workspaces"."power_state" IN ('running', 'stopped'))
);
--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "orgs_live_slug_key" ON "orgs" USING btree ("slug") WHERE "orgs"."purged_at" IS NULL;--> statement-breakpoint
CREATE INDEX "orgs_created_idx" ON "orgs" USING btree ("created_at","id");--> statement-breakpoint
CREATE UNIQUE INDEX "orphans_open_key" ON "orphans" USING btree ("kind","external_id") WHERE "orphans"."resolved_at" IS NULL AND "orphans"."deleted_at" IS NULL;--> statement-breakpoint
CREATE INDEX "orphans_open_idx" ON "orphans" USING btree ("kind","first_seen");--> statement-breakpoint
CREATE INDEX "reconcile_status_owner_idx" ON "reconcile_status" USING btree ("owner_id");--> statement-breakpoint
CREATE INDEX "tenant_resources_owner_idx" ON "tenant_resources" USING btree ("owner_id","at");--> statement-breakpoint
CREATE INDEX "tenant_resources_external_idx" ON "tenant_resources" USING btree ("external_id");--> statement-breakpoint
CREATE INDEX "workspaces_org_idx" ON "workspaces" USING btree ("org_id");--> statement-breakpoint
CREATE INDEX "workspaces_created_idx" ON "workspaces" USING btree ("created_at","id");