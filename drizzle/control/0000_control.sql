CREATE TABLE `challenges` (
	`challenge` text PRIMARY KEY NOT NULL,
	`public_key` text NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `challenges_expires_idx` ON `challenges` (`expires_at`);--> statement-breakpoint
CREATE TABLE `memberships` (
	`party_id` text NOT NULL,
	`peer_id` text NOT NULL,
	`virtual_ip` text NOT NULL,
	`public_endpoint` text,
	`local_endpoints` text NOT NULL,
	`nat_type` text NOT NULL,
	`joined_at` integer NOT NULL,
	`last_seen` integer NOT NULL,
	`left_at` integer,
	PRIMARY KEY(`party_id`, `peer_id`),
	FOREIGN KEY (`party_id`) REFERENCES `parties`(`party_id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`peer_id`) REFERENCES `peers`(`peer_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `memberships_party_ip_uq` ON `memberships` (`party_id`,`virtual_ip`);--> statement-breakpoint
CREATE INDEX `memberships_peer_idx` ON `memberships` (`peer_id`);--> statement-breakpoint
CREATE TABLE `parties` (
	`party_id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`host_id` text NOT NULL,
	`password_hash` text,
	`max_peers` integer NOT NULL,
	`subnet` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`host_id`) REFERENCES `peers`(`peer_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `peers` (
	`peer_id` text PRIMARY KEY NOT NULL,
	`public_key` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `peers_public_key_unique` ON `peers` (`public_key`);--> statement-breakpoint
CREATE TABLE `relays` (
	`relay_id` text PRIMARY KEY NOT NULL,
	`public_ip` text NOT NULL,
	`port` integer NOT NULL,
	`region` text NOT NULL,
	`capacity` integer NOT NULL,
	`load` integer NOT NULL,
	`ports` text NOT NULL,
	`sessions` integer,
	`registered_at` integer NOT NULL,
	`last_seen` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `server_keys` (
	`name` text PRIMARY KEY NOT NULL,
	`secret_key` text NOT NULL,
	`public_key` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `signals` (
	`id` text PRIMARY KEY NOT NULL,
	`party_id` text NOT NULL,
	`from_peer_id` text NOT NULL,
	`to_peer_id` text NOT NULL,
	`type` text NOT NULL,
	`data` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	FOREIGN KEY (`party_id`) REFERENCES `parties`(`party_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `signals_to_idx` ON `signals` (`to_peer_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `signals_expires_idx` ON `signals` (`expires_at`);--> statement-breakpoint
CREATE TABLE `tokens` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`peer_id` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	FOREIGN KEY (`peer_id`) REFERENCES `peers`(`peer_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `tokens_expires_idx` ON `tokens` (`expires_at`);