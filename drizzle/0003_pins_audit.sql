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
CREATE INDEX "pin_changes_pin_idx" ON "pin_changes" USING btree ("pin","runtime","region","id");