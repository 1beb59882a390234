-- A fodns database at schema version 6, written by tests/support/make_schema6_dump.py
BEGIN TRANSACTION;
CREATE TABLE apps (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            load_balancer TEXT NOT NULL DEFAULT '[]',
            web_servers TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
INSERT INTO "apps" VALUES(1,'dc1-renamed','[]','["192.0.2.11"]','2026-12-02T05:37:35.302Z','2026-12-02T05:37:35.312Z');
INSERT INTO "apps" VALUES(2,'dc2','[]','["192.0.2.20"]','2026-12-02T05:37:35.303Z','2026-12-02T05:37:35.303Z');
CREATE TABLE event_apps (
            app_id INTEGER NOT NULL,
            seq INTEGER NOT NULL REFERENCES events (seq),
            PRIMARY KEY (app_id, seq)
        ) WITHOUT ROWID;
INSERT INTO "event_apps" VALUES(1,1);
INSERT INTO "event_apps" VALUES(1,4);
INSERT INTO "event_apps" VALUES(1,5);
INSERT INTO "event_apps" VALUES(1,6);
INSERT INTO "event_apps" VALUES(1,8);
INSERT INTO "event_apps" VALUES(1,9);
INSERT INTO "event_apps" VALUES(1,10);
INSERT INTO "event_apps" VALUES(1,11);
INSERT INTO "event_apps" VALUES(1,12);
INSERT INTO "event_apps" VALUES(2,2);
INSERT INTO "event_apps" VALUES(2,4);
INSERT INTO "event_apps" VALUES(2,8);
INSERT INTO "event_apps" VALUES(2,9);
INSERT INTO "event_apps" VALUES(3,3);
INSERT INTO "event_apps" VALUES(3,6);
INSERT INTO "event_apps" VALUES(3,11);
INSERT INTO "event_apps" VALUES(3,14);
CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            zone TEXT,
            group_label TEXT,
            app TEXT,
            before TEXT,
            after TEXT,
            reason TEXT
        );
INSERT INTO "events" VALUES(1,'2026-12-02T05:37:35.302Z','ops','app_created',NULL,NULL,'dc1',NULL,'{"name":"dc1","load_balancer":[],"web_servers":["192.0.2.10"]}',NULL);
INSERT INTO "events" VALUES(2,'2026-12-02T05:37:35.303Z','ops','app_created',NULL,NULL,'dc2',NULL,'{"name":"dc2","load_balancer":[],"web_servers":["192.0.2.20"]}',NULL);
INSERT INTO "events" VALUES(3,'2026-12-02T05:37:35.304Z','ops','app_created',NULL,NULL,'dc3',NULL,'{"name":"dc3","load_balancer":["lb.dc3.example.com."],"web_servers":[]}',NULL);
INSERT INTO "events" VALUES(4,'2026-12-02T05:37:35.304Z','ops','group_created','fo.example.net','web',NULL,NULL,'{"label":"web","fqdn":"web.fo.example.net","zone":"fo.example.net","primary":"dc1","backup":"dc2","active":"primary","ttl":30}',NULL);
INSERT INTO "events" VALUES(5,'2026-12-02T05:37:35.306Z','ops','group_created','fo.example.net','api',NULL,NULL,'{"label":"api","fqdn":"api.fo.example.net","zone":"fo.example.net","primary":"dc1","backup":null,"active":"primary","ttl":30}',NULL);
INSERT INTO "events" VALUES(6,'2026-12-02T05:37:35.307Z','ops','group_created','test.example','web',NULL,NULL,'{"label":"web","fqdn":"web.test.example","zone":"test.example","primary":"dc1","backup":"dc3","active":"primary","ttl":30}',NULL);
INSERT INTO "events" VALUES(7,'2026-12-02T05:37:35.307Z','ops','group_created','fo.example.net','gone',NULL,NULL,'{"label":"gone","fqdn":"gone.fo.example.net","zone":"fo.example.net","primary":null,"backup":null,"active":"primary","ttl":30}',NULL);
INSERT INTO "events" VALUES(8,'2026-12-02T05:37:35.309Z','ops','group_switched','fo.example.net','web',NULL,'{"label":"web","fqdn":"web.fo.example.net","zone":"fo.example.net","primary":"dc1","backup":"dc2","active":"primary","ttl":30}','{"label":"web","fqdn":"web.fo.example.net","zone":"fo.example.net","primary":"dc1","backup":"dc2","active":"backup","ttl":30}',NULL);
INSERT INTO "events" VALUES(9,'2026-12-02T05:37:35.310Z','ops','group_updated','fo.example.net','api',NULL,'{"label":"api","fqdn":"api.fo.example.net","zone":"fo.example.net","primary":"dc1","backup":null,"active":"primary","ttl":30}','{"label":"api","fqdn":"api.fo.example.net","zone":"fo.example.net","primary":"dc1","backup":"dc2","active":"primary","ttl":30}',NULL);
INSERT INTO "events" VALUES(10,'2026-12-02T05:37:35.311Z','ops','app_updated',NULL,NULL,'dc1-renamed','{"name":"dc1","load_balancer":[],"web_servers":["192.0.2.10"]}','{"name":"dc1-renamed","load_balancer":[],"web_servers":["192.0.2.10"]}',NULL);
INSERT INTO "events" VALUES(11,'2026-12-02T05:37:35.312Z','ops','group_updated','test.example','web',NULL,'{"label":"web","fqdn":"web.test.example","zone":"test.example","primary":"dc1-renamed","backup":"dc3","active":"primary","ttl":30}','{"label":"web","fqdn":"web.test.example","zone":"test.example","primary":null,"backup":null,"active":"primary","ttl":30}',NULL);
INSERT INTO "events" VALUES(12,'2026-12-02T05:37:35.312Z','ops','app_updated',NULL,NULL,'dc1-renamed','{"name":"dc1-renamed","load_balancer":[],"web_servers":["192.0.2.10"]}','{"name":"dc1-renamed","load_balancer":[],"web_servers":["192.0.2.11"]}',NULL);
INSERT INTO "events" VALUES(13,'2026-12-02T05:37:35.313Z','ops','group_deleted','fo.example.net','gone',NULL,'{"label":"gone","fqdn":"gone.fo.example.net","zone":"fo.example.net","primary":null,"backup":null,"active":"primary","ttl":30}',NULL,NULL);
INSERT INTO "events" VALUES(14,'2026-12-02T05:37:35.314Z','ops','app_deleted',NULL,NULL,'dc3','{"name":"dc3","load_balancer":["lb.dc3.example.com."],"web_servers":[]}',NULL,NULL);
CREATE TABLE groups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            zone TEXT NOT NULL,
            label TEXT NOT NULL,
            primary_app_id INTEGER REFERENCES apps (id) ON DELETE RESTRICT,
            backup_app_id INTEGER REFERENCES apps (id) ON DELETE RESTRICT,
            active TEXT NOT NULL CHECK (active IN ('primary', 'backup')),
            ttl INTEGER NOT NULL CHECK (ttl BETWEEN 5 AND 86400),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (zone, label),
            FOREIGN KEY (zone, label) REFERENCES labels (zone, label),
            CHECK (primary_app_id IS NULL OR primary_app_id IS NOT backup_app_id)
        );
INSERT INTO "groups" VALUES(1,'fo.example.net','web',1,2,'backup',30,'2026-12-02T05:37:35.304Z','2026-12-02T05:37:35.309Z');
INSERT INTO "groups" VALUES(2,'fo.example.net','api',1,2,'primary',30,'2026-12-02T05:37:35.305Z','2026-12-02T05:37:35.310Z');
INSERT INTO "groups" VALUES(3,'test.example','web',NULL,NULL,'primary',30,'2026-12-02T05:37:35.307Z','2026-12-02T05:37:35.312Z');
CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
CREATE TABLE labels (
            zone TEXT NOT NULL,
            label TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (zone, label)
        ) WITHOUT ROWID;
INSERT INTO "labels" VALUES('fo.example.net','api','2026-12-02T05:37:35.305Z');
INSERT INTO "labels" VALUES('fo.example.net','gone','2026-12-02T05:37:35.307Z');
INSERT INTO "labels" VALUES('fo.example.net','web','2026-12-02T05:37:35.304Z');
INSERT INTO "labels" VALUES('test.example','web','2026-12-02T05:37:35.307Z');
CREATE TABLE reserved_labels (
            zone TEXT NOT NULL,
            label TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (zone, label, source)
        ) WITHOUT ROWID;
CREATE TABLE route53_cursor (
            zone TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            synced_at TEXT NOT NULL
        );
CREATE TABLE route53_records (
            zone TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            ttl INTEGER NOT NULL,
            record_values TEXT NOT NULL,
            PRIMARY KEY (zone, name, type)
        ) WITHOUT ROWID;
CREATE TABLE route53_written (
            zone TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            ttl INTEGER NOT NULL,
            record_values TEXT NOT NULL,
            UNIQUE (zone, name, type, ttl, record_values)
        );
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
INSERT INTO "schema_version" VALUES(1,'2026-12-02T05:37:35.298Z');
INSERT INTO "schema_version" VALUES(2,'2026-12-02T05:37:35.298Z');
INSERT INTO "schema_version" VALUES(3,'2026-12-02T05:37:35.298Z');
INSERT INTO "schema_version" VALUES(4,'2026-12-02T05:37:35.298Z');
INSERT INTO "schema_version" VALUES(5,'2026-12-02T05:37:35.298Z');
INSERT INTO "schema_version" VALUES(6,'2026-12-02T05:37:35.298Z');
CREATE TABLE tokens (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE zone_files (zone TEXT PRIMARY KEY, digest TEXT NOT NULL, names INTEGER NOT NULL DEFAULT 0);
CREATE TABLE zone_journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            zone TEXT NOT NULL,
            serial_from INTEGER NOT NULL,
            serial_to INTEGER NOT NULL,
            removed TEXT NOT NULL,
            added TEXT NOT NULL
        );
INSERT INTO "zone_journal" VALUES(1,'fo.example.net',1,2,'[]','[["web.fo.example.net", 30, "A", "192.0.2.10"]]');
INSERT INTO "zone_journal" VALUES(2,'fo.example.net',2,3,'[]','[["api.fo.example.net", 30, "A", "192.0.2.10"]]');
INSERT INTO "zone_journal" VALUES(3,'test.example',1,2,'[]','[["web.test.example", 30, "A", "192.0.2.10"]]');
INSERT INTO "zone_journal" VALUES(4,'fo.example.net',3,4,'[]','[]');
INSERT INTO "zone_journal" VALUES(5,'fo.example.net',4,5,'[["web.fo.example.net", 30, "A", "192.0.2.10"]]','[["web.fo.example.net", 30, "A", "192.0.2.20"]]');
INSERT INTO "zone_journal" VALUES(6,'test.example',2,3,'[["web.test.example", 30, "A", "192.0.2.10"]]','[]');
INSERT INTO "zone_journal" VALUES(7,'fo.example.net',5,6,'[["api.fo.example.net", 30, "A", "192.0.2.10"]]','[["api.fo.example.net", 30, "A", "192.0.2.11"]]');
INSERT INTO "zone_journal" VALUES(8,'fo.example.net',6,7,'[]','[]');
CREATE TABLE zone_serials (
            zone TEXT PRIMARY KEY,
            serial INTEGER NOT NULL CHECK (serial BETWEEN 0 AND 4294967295)
        );
INSERT INTO "zone_serials" VALUES('fo.example.net',7);
INSERT INTO "zone_serials" VALUES('test.example',3);
CREATE TRIGGER labels_are_forever BEFORE DELETE ON labels
        BEGIN SELECT RAISE(ABORT, 'a used label is never released'); END;
CREATE INDEX groups_by_label ON groups (label);
CREATE INDEX events_by_group ON events (group_label, seq);
CREATE INDEX events_by_app ON events (app COLLATE NOCASE, seq);
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE INDEX zone_journal_by_zone ON zone_journal (zone, id);
CREATE INDEX groups_by_primary_side ON groups (primary_app_id, active);
CREATE INDEX groups_by_backup_side ON groups (backup_app_id, active);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('apps',3);
INSERT INTO "sqlite_sequence" VALUES('events',14);
INSERT INTO "sqlite_sequence" VALUES('groups',4);
INSERT INTO "sqlite_sequence" VALUES('zone_journal',8);
COMMIT;
