ALTER TABLE "orgs" ADD COLUMN "target" text DEFAULT 'primary' NOT NULL;--> statement-breakpoint
ALTER TABLE "orphans" ADD COLUMN "target" text;--> statement-breakpoint
ALTER TABLE "orgs" ADD CONSTRAINT "orgs_target" CHECK ("orgs"."target" IN ('primary', 'canary'));--> statement-breakpoint
-- Open ledger rows from before targets were scanned one by one: AWS objects were the primary's.
UPDATE "orphans" SET "target" = 'primary' WHERE "kind" NOT IN ('cf_tunnel', 'cf_dns_record');
