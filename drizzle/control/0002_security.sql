CREATE TABLE `party_bans` (
	`party_id` text NOT NULL,
	`peer_id` text NOT NULL,
	`banned_at` integer NOT NULL,
	PRIMARY KEY(`party_id`, `peer_id`),
	FOREIGN KEY (`party_id`) REFERENCES `parties`(`party_id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`peer_id`) REFERENCES `peers`(`peer_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `relay_sessions` (
	`session_id` text PRIMARY KEY NOT NULL,
	`relay_id` text NOT NULL,
	`party_id` text NOT NULL,
	`peer_lo` text NOT NULL,
	`peer_hi` text NOT NULL,
	`requested_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	FOREIGN KEY (`party_id`) REFERENCES `parties`(`party_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `relay_sessions_pair_uq` ON `relay_sessions` (`party_id`,`peer_lo`,`peer_hi`);--> statement-breakpoint
CREATE INDEX `relay_sessions_lo_idx` ON `relay_sessions` (`peer_lo`);--> statement-breakpoint
CREATE INDEX `relay_sessions_hi_idx` ON `relay_sessions` (`peer_hi`);--> statement-breakpoint
CREATE INDEX `relay_sessions_expires_idx` ON `relay_sessions` (`expires_at`);