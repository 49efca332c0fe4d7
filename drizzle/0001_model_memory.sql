CREATE TABLE `model_memory` (
	`model_id` text NOT NULL,
	`settings_key` text NOT NULL,
	`total_bytes` integer NOT NULL,
	`devices` text NOT NULL,
	`measured_at` text NOT NULL,
	PRIMARY KEY(`model_id`, `settings_key`)
);
