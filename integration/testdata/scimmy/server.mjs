// A SCIM 2.0 service provider built on SCIMMY and its Express routers, with in-memory
// storage: scimbridge's integration tests use it as a target not written in this repository.
//
//   node server.mjs TOKEN      listens on 127.0.0.1 (a free port) and prints {"port": N}
//
// Requests need "Authorization: Bearer TOKEN". GET /_state (no auth) returns every stored
// user and group and the number of creates, for the tests' assertions.
import {randomUUID} from "node:crypto";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const token = process.argv[2];
if (!token) {
    console.error("usage: node server.mjs TOKEN");
    process.exit(2);
}

const stores = {User: new Map(), Group: new Map()};
const creates = {User: 0, Group: 0};

// plain turns a SCIMMY schema instance into stored JSON.
const plain = (v) => JSON.parse(JSON.stringify(v));

function declare(resource, kind, unique) {
    SCIMMY.Resources.declare(resource)
        .ingress((res, instance) => {
            const store = stores[kind];
            const data = plain(instance);
            const key = data[unique]?.toLowerCase();
            for (const [id, other] of store) {
                if (id !== res.id && key && other[unique]?.toLowerCase() === key) {
                    throw new SCIMMY.Types.Error(409, "uniqueness", `${unique} ${data[unique]} is already taken`);
                }
            }
            if (res.id) {
                const old = store.get(res.id);
                if (!old) throw new SCIMMY.Types.Error(404, null, `Resource ${res.id} not found`);
                const now = new Date();
                const updated = {...data, id: res.id, meta: {...old.meta, lastModified: now}};
                store.set(res.id, updated);
                return updated;
            }
            const now = new Date();
            const created = {...data, id: randomUUID(), meta: {created: now, lastModified: now}};
            store.set(created.id, created);
            creates[kind]++;
            return created;
        })
        .egress((res) => {
            const store = stores[kind];
            if (res.id) {
                const found = store.get(res.id);
                if (!found) throw new SCIMMY.Types.Error(404, null, `Resource ${res.id} not found`);
                return found;
            }
            const all = [...store.values()];
            return res.filter ? res.filter.match(all) : all;
        })
        .degress((res) => {
            if (!stores[kind].delete(res.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${res.id} not found`);
        });
}

declare(SCIMMY.Resources.User, "User", "userName");
declare(SCIMMY.Resources.Group, "Group", "displayName");

const app = express();
app.get("/_state", (req, res) => {
    res.json({users: [...stores.User.values()], groups: [...stores.Group.values()], creates});
});
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    docUri: "https://example.com/help/bearer.html",
    handler: (request) => {
        if (request.header("Authorization") !== `Bearer ${token}`) throw new Error("Authorization failure");
        return "scimbridge";
    },
}));

const server = app.listen(0, "127.0.0.1", () => {
    console.log(JSON.stringify({port: server.address().port}));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
