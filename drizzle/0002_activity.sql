CREATE TABLE `activity` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`request_id` text NOT NULL,
	`ts` integer NOT NULL,
	`model` text,
	`route` text NOT NULL,
	`status` integer NOT NULL,
	`client` text,
	`key_name` text,
	`session_id` text,
	`streaming` integer DEFAULT false NOT NULL,
	`prompt_tokens` integer,
	`cached_tokens` integer,
	`completion_tokens` integer,
	`queued_ms` integer,
	`loading_ms` integer,
	`ttft_ms` integer,
	`prompt_tps` real,
	`gen_tps` real,
	`duration_ms` integer NOT NULL,
	`error` text,
	`rewritten` text
);
--> statement-breakpoint
CREATE INDEX `activity_ts` ON `activity` (`ts`);--> statement-breakpoint
CREATE INDEX `activity_model_seq` ON `activity` (`model`,`seq`);--> statement-breakpoint
CREATE INDEX `activity_key_seq` ON `activity` (`key_name`,`seq`);