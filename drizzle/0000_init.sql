CREATE TABLE `metrics_minute` (
	`ts` integer PRIMARY KEY NOT NULL,
	`samples` integer NOT NULL,
	`cpu_avg` real NOT NULL,
	`cpu_max` real NOT NULL,
	`mem_avg` real NOT NULL,
	`mem_max` real NOT NULL,
	`gpu_util_avg` real,
	`gpu_util_max` real,
	`gpu_mem_avg` real,
	`gpu_mem_max` real,
	`requests` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`response_time_avg` real,
	`tokens_per_second` real,
	`prompt_tokens` integer DEFAULT 0 NOT NULL,
	`completion_tokens` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE `models` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`description` text,
	`version` text,
	`path` text NOT NULL,
	`size` integer DEFAULT 0 NOT NULL,
	`family` text DEFAULT 'unknown' NOT NULL,
	`format` text,
	`quantization` text,
	`context_size` integer,
	`mmproj_path` text,
	`source` text DEFAULT 'registered' NOT NULL,
	`missing` integer DEFAULT false NOT NULL,
	`settings` text DEFAULT '{}' NOT NULL,
	`last_used` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `models_path_unique` ON `models` (`path`);