#!/usr/bin/env python3
"""seed_plc_db.py NODES.json [USERS.json] [--extra-nodes N]: prints the SQL that fills a PLC
database (PLCAPI's v5 tables, made by `bootmedium db init`) with the nodes of a JSON node store
and the persons of a persons file, as DatabaseTests seed their throwaway cluster.

The mapping (docs/database.md): sites and peers for the ids named; a node's tags are node_tag
rows of tag types named like the tags; a node group G is a nodegroups row defined by the tag
type `nodegroup:G` with value `yes`, which the node carries; an interface setting is an
interface_tag row whose tag type has the setting's name and category (a null category is
stored as the empty category); a peer's node is a peer_node row. --extra-nodes N adds N
copies of the first local DHCP node (ids 1001...), each with its own hostname and interface.
"""
import json
import sys


def q(value):
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def main(argv):
    extra = 0
    if "--extra-nodes" in argv:
        i = argv.index("--extra-nodes")
        extra = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    store = json.load(open(argv[0]))
    persons = json.load(open(argv[1]))["persons"] if len(argv) > 1 else []
    nodes = store.get("nodes", [])
    interfaces = store.get("interfaces", [])
    if extra:
        template = next(n for n in nodes if n.get("peer_id") is None and not n.get("tags"))
        template_if = next(i for i in interfaces if i["interface_id"] == template["interface_ids"][0])
        for k in range(extra):
            nid = 1001 + k
            nodes.append(dict(template, node_id=nid, hostname="extra%d.site%d.demo.example.org" % (k, template["site_id"]),
                              key="old-key-%d" % nid, interface_ids=[nid * 10]))
            interfaces.append(dict(template_if, interface_id=nid * 10, node_id=nid, mac="52:54:00:EE:%02X:%02X" % (k // 256, k % 256)))
    out = ["BEGIN;"]
    sites = sorted({n["site_id"] for n in nodes if n.get("site_id") is not None}
                   | {s for p in persons for s in p.get("site_ids", [])})
    for s in sites:
        out.append("INSERT INTO sites (site_id, login_base, name, abbreviated_name) VALUES (%d, 'site%d', 'Site %d', 'S%d');"
                   % (s, s, s, s))
    for p in sorted({n["peer_id"] for n in nodes if n.get("peer_id") is not None}):
        out.append("INSERT INTO peers (peer_id, peername, peer_url) VALUES (%d, 'peer%d', 'https://peer%d.example.net/PLCAPI/');"
                   % (p, p, p))
    tag_types = {}

    def tag_type(name, category):
        if name not in tag_types:
            tag_types[name] = len(tag_types) + 1
            out.append("INSERT INTO tag_types (tag_type_id, tagname, category) VALUES (%d, %s, %s);"
                       % (tag_types[name], q(name), q(category)))
        return tag_types[name]

    groups = {}
    for n in nodes:
        out.append("INSERT INTO nodes (node_id, node_type, hostname, site_id, key) VALUES (%d, %s, %s, %d, %s);"
                   % (n["node_id"], q(n.get("node_type") or "regular"), q(n["hostname"]), n["site_id"], q(n.get("key"))))
        if n.get("peer_id") is not None:
            out.append("INSERT INTO peer_node (node_id, peer_id, peer_node_id) VALUES (%d, %d, %d);"
                       % (n["node_id"], n["peer_id"], n["node_id"]))
        for name, value in n.get("tags", {}).items():
            out.append("INSERT INTO node_tag (node_id, tag_type_id, value) VALUES (%d, %d, %s);"
                       % (n["node_id"], tag_type(name, "node/config"), q(value)))
        for g in n.get("nodegroups", []):
            t = tag_type("nodegroup:" + g, "node/group")
            if g not in groups:
                groups[g] = len(groups) + 1
                out.append("INSERT INTO nodegroups (nodegroup_id, groupname, tag_type_id, value) VALUES (%d, %s, %d, 'yes');"
                           % (groups[g], q(g), t))
            out.append("INSERT INTO node_tag (node_id, tag_type_id, value) VALUES (%d, %d, 'yes');" % (n["node_id"], t))
    for i in interfaces:
        out.append("INSERT INTO interfaces (interface_id, node_id, is_primary, type, method, ip, mac, gateway, network, "
                   "broadcast, netmask, dns1, dns2) VALUES (%d, %d, %s, 'ipv4', %s, %s, %s, %s, %s, %s, %s, %s, %s);"
                   % (i["interface_id"], i["node_id"], q(bool(i.get("is_primary"))), q(i.get("method") or "unknown"),
                      q(i.get("ip")), q(i.get("mac")), q(i.get("gateway")), q(i.get("network")), q(i.get("broadcast")),
                      q(i.get("netmask")), q(i.get("dns1")), q(i.get("dns2"))))
        for setting in i.get("settings", []):
            t = tag_type(setting["name"], setting.get("category") or "")
            out.append("INSERT INTO interface_tag (interface_id, tag_type_id, value) VALUES (%d, %d, %s);"
                       % (i["interface_id"], t, q(setting["value"])))
    roles = {"admin": 10, "pi": 20, "user": 30, "tech": 40}
    for p in persons:
        out.append("INSERT INTO persons (person_id, email, first_name, last_name, enabled, password) "
                   "VALUES (%d, %s, 'First', 'Last', %s, %s);"
                   % (p["person_id"], q(p["email"]), q(bool(p.get("enabled"))), q(p.get("password") or "nopass")))
        for r in p.get("roles", []):
            out.append("INSERT INTO person_role (person_id, role_id) VALUES (%d, %d);" % (p["person_id"], roles[r]))
        for k, s in enumerate(p.get("site_ids", [])):
            out.append("INSERT INTO person_site (person_id, site_id, is_primary) VALUES (%d, %d, %s);"
                       % (p["person_id"], s, q(k == 0)))
    for table, column in (("tag_types", "tag_type_id"), ("nodegroups", "nodegroup_id"), ("nodes", "node_id"),
                          ("interfaces", "interface_id"), ("persons", "person_id"), ("sites", "site_id"), ("peers", "peer_id")):
        out.append("SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE((SELECT max(%s) FROM %s), 0) + 1, false);"
                   % (table, column, column, table))
    out.append("COMMIT;")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
