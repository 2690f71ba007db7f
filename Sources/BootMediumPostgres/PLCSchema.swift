/// The subset of PLCAPI's schema version 5 (`planetlab5.sql`) that a node config and a
/// server call need, in today's SQL (PostgreSQL 15 has neither `WITH OIDS` nor PLCAPI's
/// `array_accum`): the same table and column names, types and defaults, every statement
/// idempotent (`IF NOT EXISTS`, `ON CONFLICT DO NOTHING`), so `bootmedium db init` creates what
/// is missing in an empty database and changes nothing in a PLC's own (docs/database.md).
enum PLCSchema {
    static let statements: [String] = [
        "CREATE TABLE IF NOT EXISTS plc_db_version (version integer NOT NULL, subversion integer NOT NULL DEFAULT 0)",
        "INSERT INTO plc_db_version (version, subversion) SELECT 5, 100 WHERE NOT EXISTS (SELECT 1 FROM plc_db_version)",
        "CREATE TABLE IF NOT EXISTS roles (role_id integer PRIMARY KEY, name text UNIQUE NOT NULL)",
        "INSERT INTO roles (role_id, name) VALUES (10, 'admin'), (20, 'pi'), (30, 'user'), (40, 'tech') ON CONFLICT DO NOTHING",
        """
        CREATE TABLE IF NOT EXISTS tag_types (
            tag_type_id serial PRIMARY KEY, tagname text UNIQUE NOT NULL, description text,
            min_role_id integer REFERENCES roles DEFAULT 10, category text NOT NULL DEFAULT 'general')
        """,
        """
        CREATE TABLE IF NOT EXISTS persons (
            person_id serial PRIMARY KEY, email text NOT NULL, first_name text NOT NULL, last_name text NOT NULL,
            deleted boolean NOT NULL DEFAULT false, enabled boolean NOT NULL DEFAULT false,
            password text NOT NULL DEFAULT 'nopass', verification_key text, verification_expires timestamp without time zone,
            title text, phone text, url text, bio text,
            date_created timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
            last_updated timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP)
        """,
        "CREATE INDEX IF NOT EXISTS persons_email_idx ON persons (email)",
        """
        CREATE TABLE IF NOT EXISTS sites (
            site_id serial PRIMARY KEY, login_base text NOT NULL, name text NOT NULL, abbreviated_name text NOT NULL,
            enabled boolean NOT NULL DEFAULT true, deleted boolean NOT NULL DEFAULT false, is_public boolean NOT NULL DEFAULT true,
            max_slices integer NOT NULL DEFAULT 0, max_slivers integer NOT NULL DEFAULT 1000,
            latitude real, longitude real, url text, ext_consortium_id integer,
            date_created timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
            last_updated timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP)
        """,
        """
        CREATE TABLE IF NOT EXISTS person_site (
            person_id integer REFERENCES persons NOT NULL, site_id integer REFERENCES sites NOT NULL,
            is_primary boolean NOT NULL DEFAULT false, PRIMARY KEY (person_id, site_id))
        """,
        """
        CREATE TABLE IF NOT EXISTS person_role (
            person_id integer REFERENCES persons NOT NULL, role_id integer REFERENCES roles NOT NULL, PRIMARY KEY (person_id, role_id))
        """,
        "CREATE TABLE IF NOT EXISTS boot_states (boot_state text PRIMARY KEY)",
        "INSERT INTO boot_states VALUES ('boot'), ('safeboot'), ('reinstall'), ('disabled') ON CONFLICT DO NOTHING",
        "CREATE TABLE IF NOT EXISTS run_levels (run_level text PRIMARY KEY)",
        "INSERT INTO run_levels VALUES ('boot'), ('safeboot'), ('failboot'), ('reinstall') ON CONFLICT DO NOTHING",
        "CREATE TABLE IF NOT EXISTS node_types (node_type text PRIMARY KEY)",
        "INSERT INTO node_types VALUES ('regular'), ('reservable'), ('dummynet') ON CONFLICT DO NOTHING",
        """
        CREATE TABLE IF NOT EXISTS nodes (
            node_id serial PRIMARY KEY, node_type text REFERENCES node_types DEFAULT 'regular', hostname text NOT NULL,
            site_id integer REFERENCES sites NOT NULL, boot_state text REFERENCES boot_states NOT NULL DEFAULT 'reinstall',
            run_level text REFERENCES run_levels DEFAULT NULL, deleted boolean NOT NULL DEFAULT false,
            model text, boot_nonce text, version text, ssh_rsa_key text, key text, verified boolean NOT NULL DEFAULT false,
            date_created timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
            last_updated timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
            last_download timestamp without time zone, last_pcu_reboot timestamp without time zone,
            last_pcu_confirmation timestamp without time zone, last_contact timestamp without time zone)
        """,
        "CREATE INDEX IF NOT EXISTS nodes_hostname_idx ON nodes (hostname)",
        "CREATE INDEX IF NOT EXISTS nodes_site_id_idx ON nodes (site_id)",
        """
        CREATE TABLE IF NOT EXISTS node_tag (
            node_tag_id serial PRIMARY KEY, node_id integer REFERENCES nodes NOT NULL,
            tag_type_id integer REFERENCES tag_types, value text)
        """,
        "CREATE TABLE IF NOT EXISTS network_types (type text PRIMARY KEY)",
        "INSERT INTO network_types VALUES ('ipv4') ON CONFLICT DO NOTHING",
        "CREATE TABLE IF NOT EXISTS network_methods (method text PRIMARY KEY)",
        "INSERT INTO network_methods VALUES ('static'), ('dhcp'), ('proxy'), ('tap'), ('ipmi'), ('unknown') ON CONFLICT DO NOTHING",
        """
        CREATE TABLE IF NOT EXISTS interfaces (
            interface_id serial PRIMARY KEY, node_id integer REFERENCES nodes NOT NULL,
            is_primary boolean NOT NULL DEFAULT false, type text REFERENCES network_types NOT NULL,
            method text REFERENCES network_methods NOT NULL, ip text, mac text, gateway text, network text,
            broadcast text, netmask text, dns1 text, dns2 text, bwlimit integer, hostname text,
            last_updated timestamp without time zone)
        """,
        "CREATE INDEX IF NOT EXISTS interfaces_node_id_idx ON interfaces (node_id)",
        """
        CREATE TABLE IF NOT EXISTS interface_tag (
            interface_tag_id serial PRIMARY KEY, interface_id integer REFERENCES interfaces NOT NULL,
            tag_type_id integer REFERENCES tag_types NOT NULL, value text)
        """,
        """
        CREATE TABLE IF NOT EXISTS nodegroups (
            nodegroup_id serial PRIMARY KEY, groupname text UNIQUE NOT NULL,
            tag_type_id integer REFERENCES tag_types, value text)
        """,
        """
        CREATE TABLE IF NOT EXISTS peers (
            peer_id serial PRIMARY KEY, peername text NOT NULL, peer_url text NOT NULL, cacert text, key text,
            shortname text, hrn_root text, deleted boolean NOT NULL DEFAULT false)
        """,
        """
        CREATE TABLE IF NOT EXISTS peer_node (
            node_id integer REFERENCES nodes PRIMARY KEY, peer_id integer REFERENCES peers NOT NULL,
            peer_node_id integer NOT NULL, UNIQUE (peer_id, peer_node_id))
        """,
        """
        CREATE TABLE IF NOT EXISTS peer_person (
            person_id integer REFERENCES persons PRIMARY KEY, peer_id integer REFERENCES peers NOT NULL,
            peer_person_id integer NOT NULL, UNIQUE (peer_id, peer_person_id))
        """,
    ]
}
