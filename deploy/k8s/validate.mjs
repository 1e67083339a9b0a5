// Offline check of the Kubernetes manifests: no cluster, no network.
//
//   node deploy/k8s/validate.mjs NODE_MODULES SERVE_HELP_FILE DIR [DIR...]
//
// Each DIR is checked on its own (the tests check many broken copies in one
// run); problems are printed as "k8s: DIR: FILE: ...".
// 1. Every YAML document parses, and every file in DIR is listed in its
//    kustomization.yaml (and the other way round).
// 2. Every object is checked against the Kubernetes OpenAPI schema of its
//    apiVersion and kind (the npm package kubernetes-models: required fields,
//    types, enums, formats). Its schemas allow unknown fields, which is why
//    part 3 reads the fields that matter by name.
// 3. What this deployment relies on: probes on /readyz and /healthz at the
//    served port, requests and limits on every container, the state volume
//    from volumeClaimTemplates mounted where SHOPKEEPER_STATE points, Services
//    and the HPA pointing at what exists, a drain that fits in the grace
//    period, and every SHOPKEEPER_* variable one `shopkeeper serve --help`
//    accepts (SERVE_HELP_FILE is its output). The shared event log: the
//    servers have SHOPKEEPER_EVENT_LOG; when it names Services here, they
//    are Redis (or Sentinel) pods on the URL's ports, with the URL's master
//    name, appendonly yes and appendfsync always; its password file is in
//    a mounted Secret; the ingress has no customer affinity left; the
//    training CronJob feeds the log's events (--events-from).
//
// Prints each problem and exits 1 if there is any.
import fs from "node:fs";
import path from "node:path";

const [nodeModules, helpFile, ...dirs] = process.argv.slice(2);
if (!nodeModules || !helpFile || dirs.length === 0) {
  console.error("usage: node validate.mjs NODE_MODULES SERVE_HELP_FILE DIR [DIR...]");
  process.exit(2);
}
const YAML = (await import(path.resolve(nodeModules, "yaml/dist/index.js"))).default;
let failed = 0;
for (const dir of dirs) {
  const problems = await validateDir(dir);
  for (const p of problems) console.error(`k8s: ${dir}: ${p}`);
  if (problems.length) {
    console.error(`k8s: ${dir}: ${problems.length} problem(s)`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);

async function validateDir(dir) {
  const problems = [];
  const problem = (where, msg) => problems.push(`${where}: ${msg}`);

  // ---- 1. files and documents ------------------------------------------------
  const kustPath = path.join(dir, "kustomization.yaml");
  let kust = {};
  try {
    kust = YAML.parse(fs.readFileSync(kustPath, "utf8")) || {};
  } catch (e) {
    problem("kustomization.yaml", `${e.message.split("\n")[0]}`);
  }
  const listed = new Set(kust.resources || []);
  const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml");
  for (const f of files) if (!listed.has(f)) problem(f, "not listed in kustomization.yaml");
  for (const f of listed) if (!files.includes(f)) problem("kustomization.yaml", `lists ${f}, which is missing`);

  const objects = []; // { file, obj }
  for (const f of files.sort()) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, f), "utf8"));
    for (const doc of docs) {
      if (doc.errors.length) {
        for (const e of doc.errors) problem(f, `YAML: ${e.message.split("\n")[0]}`);
        continue;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) continue;
      if (typeof obj !== "object" || !obj.apiVersion || !obj.kind || !obj.metadata?.name) {
        problem(f, "a document without apiVersion, kind and metadata.name");
        continue;
      }
      objects.push({ file: f, obj });
    }
  }
  const label = ({ file, obj }) => `${file}: ${obj.kind}/${obj.metadata.name}`;

  // ---- 2. schemas ---------------------------------------------------------------
  for (const o of objects) {
    const [group, version] = o.obj.apiVersion.includes("/") ? o.obj.apiVersion.split("/") : ["", o.obj.apiVersion];
    const modPath = path.resolve(nodeModules, "kubernetes-models", group || ".", version, `${o.obj.kind}.js`);
    if (!fs.existsSync(modPath)) {
      problem(label(o), `unknown apiVersion/kind ${o.obj.apiVersion} ${o.obj.kind}`);
      continue;
    }
    const mod = await import(modPath);
    const Model = mod[o.obj.kind];
    try {
      new Model(o.obj).validate();
    } catch (e) {
      problem(label(o), `schema: ${e.message.split("\n").slice(0, 3).join("; ")}`);
    }
  }

  // ---- 3. what this deployment relies on ------------------------------------------
  const byKind = (kind) => objects.filter((o) => o.obj.kind === kind);
  const find = (kind, name) => objects.find((o) => o.obj.kind === kind && o.obj.metadata.name === name);

  // SHOPKEEPER_* variables the binary accepts, from its --help.
  const help = fs.readFileSync(helpFile, "utf8");
  const accepted = new Set(["SHOPKEEPER_API_KEYS"]);
  for (const m of help.matchAll(/^\s+--([a-z][a-z-]*)/gm)) {
    if (m[1] === "help") continue;
    accepted.add(m[1] === "api-keys" ? "SHOPKEEPER_API_KEYS_FILE" : "SHOPKEEPER_" + m[1].toUpperCase().replace(/-/g, "_"));
  }
  if (accepted.size < 5) problem(helpFile, "does not look like `shopkeeper serve --help`");
  const configEnv = {};
  for (const o of byKind("ConfigMap")) {
    for (const [k, v] of Object.entries(o.obj.data || {})) {
      if (k.startsWith("SHOPKEEPER_") && !accepted.has(k)) problem(label(o), `${k}: not an option of shopkeeper serve`);
      configEnv[k] = v;
    }
  }

  const matches = (selector, labels) =>
    selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

  function checkContainers(where, podSpec, { server, claims }) {
    const volumes = new Set((podSpec.volumes || []).map((v) => v.name));
    // Services named shopkeeper* inject SHOPKEEPER_<SERVICE>_... variables.
    if (podSpec.enableServiceLinks !== false && byKind("Service").some((o) => /^shopkeeper/.test(o.obj.metadata.name)))
      problem(where, "enableServiceLinks is not false: Service links would inject SHOPKEEPER_* variables");
    for (const c of podSpec.containers || []) {
      const w = `${where} container ${c.name}`;
      for (const kind of ["requests", "limits"])
        for (const r of ["cpu", "memory"])
          if (!c.resources?.[kind]?.[r]) problem(w, `no resources.${kind}.${r}`);
      for (const e of c.env || [])
        if (e.name.startsWith("SHOPKEEPER_") && !accepted.has(e.name)) problem(w, `${e.name}: not an option of shopkeeper serve`);
      for (const ref of c.envFrom || [])
        if (ref.configMapRef && !find("ConfigMap", ref.configMapRef.name)) problem(w, `envFrom: no ConfigMap ${ref.configMapRef.name}`);
      for (const m of c.volumeMounts || [])
        if (!volumes.has(m.name) && !(claims || server?.claims)?.has(m.name)) problem(w, `mounts ${m.name}, which is no volume`);
      if (!server) continue;
      const ports = c.ports || [];
      const listen = configEnv.SHOPKEEPER_LISTEN || "";
      const port = Number(listen.split(":").pop());
      const portOk = (p) => ports.some((cp) => cp.name === p || cp.containerPort === p) &&
        (typeof p === "number" ? p === port : ports.find((cp) => cp.name === p)?.containerPort === port);
      if (!ports.some((cp) => cp.containerPort === port)) problem(w, `no containerPort ${port} (SHOPKEEPER_LISTEN ${listen})`);
      for (const [probe, want] of [["readinessProbe", "/readyz"], ["livenessProbe", "/healthz"]]) {
        const g = c[probe]?.httpGet;
        if (!g) problem(w, `no ${probe}.httpGet`);
        else {
          if (g.path !== want) problem(w, `${probe} on ${g.path}, expected ${want}`);
          if (!portOk(g.port)) problem(w, `${probe} port ${g.port} is not the served port ${port}`);
        }
      }
      const stateMount = (c.volumeMounts || []).find((m) => server.claims.has(m.name));
      if (!stateMount) problem(w, "does not mount a volumeClaimTemplate (the state)");
      else if (configEnv.SHOPKEEPER_STATE && stateMount.mountPath !== configEnv.SHOPKEEPER_STATE)
        problem(w, `state mounted at ${stateMount.mountPath}, SHOPKEEPER_STATE is ${configEnv.SHOPKEEPER_STATE}`);
      const model = configEnv.SHOPKEEPER_MODEL || "";
      if (!(c.volumeMounts || []).some((m) => model.startsWith(m.mountPath + "/") || model === m.mountPath))
        problem(w, `no volume mounted at SHOPKEEPER_MODEL ${model}`);
      // Keys from a Secret: without keys, a server listening beyond
      // loopback is in protected mode and refuses every write.
      const envOf = (name) => (c.env || []).find((e) => e.name === name) ?? (name in configEnv ? { value: configEnv[name] } : null);
      const loopback = /^(127\.|\[::1\]:|localhost:)/.test(listen);
      const keysFile = envOf("SHOPKEEPER_API_KEYS_FILE")?.value;
      const keysEnv = envOf("SHOPKEEPER_API_KEYS");
      if (keysFile) {
        const m = (c.volumeMounts || []).find((vm) => keysFile.startsWith(vm.mountPath + "/"));
        const vol = m && (podSpec.volumes || []).find((v) => v.name === m.name);
        if (!vol?.secret) problem(w, `SHOPKEEPER_API_KEYS_FILE ${keysFile} is not in a mounted Secret`);
      } else if (keysEnv) {
        if (!keysEnv.valueFrom?.secretKeyRef) problem(w, "SHOPKEEPER_API_KEYS is not taken from a Secret (secretKeyRef)");
      } else if (!loopback && !["1", "true", "yes"].includes(envOf("SHOPKEEPER_INSECURE_NO_AUTH")?.value)) {
        problem(w, `no API keys (SHOPKEEPER_API_KEYS_FILE from a Secret): listening on ${listen}, the server would be in protected mode and refuse every write`);
      }
      // The drain must fit in the grace period, after preStop.
      const grace = podSpec.terminationGracePeriodSeconds ?? 30;
      const pre = c.lifecycle?.preStop?.exec?.command?.join(" ").match(/sleep (\d+)/);
      const drain = Number(configEnv.SHOPKEEPER_DRAIN_TIMEOUT ?? 5);
      if ((pre ? Number(pre[1]) : 0) + drain >= grace)
        problem(w, `preStop ${pre ? pre[1] : 0} s + drain ${drain} s do not fit in terminationGracePeriodSeconds ${grace}`);
    }
  }

  // The servers' StatefulSet runs `serve`; Redis' runs redis-server.
  const runs = (o, what) => (o.obj.spec.template?.spec?.containers || []).some((c) =>
    [...(c.command || []), ...(c.args || [])].some((a) => String(a) === what));
  const sets = byKind("StatefulSet").filter((o) => runs(o, "serve"));
  const redisSets = byKind("StatefulSet").filter((o) => runs(o, "redis-server") || (o.obj.spec.template?.spec?.containers || []).some((c) => (c.command || [])[0] === "redis-server"));
  for (const o of byKind("StatefulSet"))
    if (!sets.includes(o) && !redisSets.includes(o)) problem(label(o), "runs neither `shopkeeper serve` nor redis-server");
  if (sets.length !== 1) problem(dir, `expected one StatefulSet running serve, found ${sets.length}`);
  const podsOf = (selector) => byKind("StatefulSet").find((o) => matches(selector, o.obj.spec.template?.metadata?.labels));
  for (const svc of byKind("Service")) {
    const set = podsOf(svc.obj.spec.selector);
    if (!set) { problem(label(svc), "selector matches no pod of a StatefulSet"); continue; }
    const ports = (set.obj.spec.template.spec.containers || []).flatMap((c) => c.ports || []);
    for (const p of svc.obj.spec.ports || [])
      if (!ports.some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort))
        problem(label(svc), `targetPort ${p.targetPort} is no container port`);
  }
  for (const pdb of byKind("PodDisruptionBudget"))
    if (!podsOf(pdb.obj.spec.selector?.matchLabels)) problem(label(pdb), "selector matches no pod of a StatefulSet");
  for (const o of redisSets) {
    const s = o.obj.spec;
    if (!matches(s.selector?.matchLabels, s.template?.metadata?.labels)) problem(label(o), "selector does not match the pod template's labels");
    const headless = find("Service", s.serviceName);
    if (!headless || headless.obj.spec.clusterIP !== "None") problem(label(o), `serviceName ${s.serviceName}: no headless Service`);
    const claims = new Set((s.volumeClaimTemplates || []).map((v) => v.metadata?.name));
    if (claims.size === 0) problem(label(o), "no volumeClaimTemplates: the log (AOF) would not survive the pod");
    checkContainers(label(o), s.template?.spec || {}, { server: null, claims });
    for (const c of s.template?.spec?.initContainers || [])
      checkContainers(`${label(o)} init`, { ...s.template.spec, containers: [c] }, { server: null, claims });
  }
  for (const o of sets) {
    const s = o.obj.spec;
    const podLabels = s.template?.metadata?.labels;
    if (!matches(s.selector?.matchLabels, podLabels)) problem(label(o), "selector does not match the pod template's labels");
    const claims = new Set((s.volumeClaimTemplates || []).map((v) => v.metadata?.name));
    if (claims.size === 0) problem(label(o), "no volumeClaimTemplates: the state would not survive the pod");
    const headless = find("Service", s.serviceName);
    if (!headless) problem(label(o), `serviceName ${s.serviceName}: no such Service`);
    else if (headless.obj.spec.clusterIP !== "None") problem(label(o), `serviceName ${s.serviceName} is not headless`);
    checkContainers(label(o), s.template?.spec || {}, { server: { claims } });
    checkEventLog(o, s.template?.spec || {});
  }

  // ---- the shared event log -----------------------------------------------------
  // All the text of the objects' configuration, for what Redis is told.
  function redisText(o) {
    const spec = o.obj.spec.template?.spec || {};
    let text = JSON.stringify([...(spec.initContainers || []), ...(spec.containers || [])].map((c) => [c.command, c.args]));
    for (const v of spec.volumes || [])
      if (v.configMap) text += "\n" + Object.values(find("ConfigMap", v.configMap.name)?.obj.data || {}).join("\n");
    return text;
  }
  function checkEventLog(o, podSpec) {
    const url = configEnv.SHOPKEEPER_EVENT_LOG;
    if (!url) {
      problem(label(o), "no SHOPKEEPER_EVENT_LOG: behind a round-robin balancer each replica would hold only the live state it took itself");
      return;
    }
    const m = url.match(/^(redis|sentinel):\/\/(?:[^@/]*@)?([^/?]+)(?:\/([^?]*))?(?:\?(.*))?$/);
    if (!m) { problem(label(o), `SHOPKEEPER_EVENT_LOG ${url}: not redis://... or sentinel://...`); return; }
    const [, scheme, hostList, master, query] = m;
    if (scheme === "sentinel" && !master) problem(label(o), "SHOPKEEPER_EVENT_LOG: a sentinel:// URL without /MASTERNAME");
    const defPort = scheme === "sentinel" ? 26379 : 6379;
    let inCluster = 0;
    for (const h of hostList.split(",")) {
      const hm = h.match(/^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/);
      if (!hm) { problem(label(o), `SHOPKEEPER_EVENT_LOG: bad host ${h}`); continue; }
      const port = Number(hm[2] || defPort);
      const parts = hm[1].split(".");
      // POD.SERVICE, SERVICE, or SERVICE.NAMESPACE.svc...: a Service named here?
      const svc = find("Service", parts.length >= 2 && find("Service", parts[1]) ? parts[1] : parts[0]);
      if (!svc) continue; // an external Redis
      inCluster++;
      if (!(svc.obj.spec.ports || []).some((p) => p.port === port)) problem(label(o), `SHOPKEEPER_EVENT_LOG: ${h}: Service ${svc.obj.metadata.name} has no port ${port}`);
      const set = podsOf(svc.obj.spec.selector);
      if (!redisSets.includes(set)) { problem(label(o), `SHOPKEEPER_EVENT_LOG: ${h}: Service ${svc.obj.metadata.name} selects no Redis pods`); continue; }
      const text = redisText(set);
      if (scheme === "sentinel") {
        const mon = text.match(/sentinel monitor (\S+)/);
        if (!mon) problem(label(set), "no `sentinel monitor` in its configuration, but the servers go through sentinels");
        else if (master && mon[1] !== master) problem(label(o), `SHOPKEEPER_EVENT_LOG names master ${master}, the sentinels monitor ${mon[1]}`);
        const pod = parts.length >= 2 && /-(\d+)$/.exec(parts[0]);
        if (pod && Number(pod[1]) >= (set.obj.spec.replicas ?? 1)) problem(label(o), `SHOPKEEPER_EVENT_LOG: ${h}: ${set.obj.metadata.name} has no pod ${parts[0]}`);
      }
    }
    if (redisSets.length && !inCluster) problem(label(o), `SHOPKEEPER_EVENT_LOG names no Service of ${redisSets.map((r) => r.obj.metadata.name).join(", ")}: Redis here is unused (an external Redis: leave redis.yaml out)`);
    for (const r of redisSets) {
      const text = redisText(r);
      if (!/appendonly "?yes/.test(text) || !/appendfsync "?always/.test(text))
        problem(label(r), "Redis without appendonly yes and appendfsync always: a crash could lose writes the servers acknowledged");
    }
    // A password from a file: in a mounted Secret of every pod that uses the URL.
    const pwFile = new URLSearchParams(query || "").get("password_file");
    if (pwFile) {
      for (const [where, spec] of [[label(o), podSpec], ...byKind("CronJob").map((cj) => [label(cj), cj.obj.spec.jobTemplate?.spec?.template?.spec || {}])])
        for (const c of spec.containers || []) {
          const mnt = (c.volumeMounts || []).find((vm) => pwFile.startsWith(vm.mountPath + "/"));
          const vol = mnt && (spec.volumes || []).find((v) => v.name === mnt.name);
          if (!vol?.secret) problem(`${where} container ${c.name}`, `SHOPKEEPER_EVENT_LOG's password_file ${pwFile} is not in a mounted Secret`);
        }
    }
  }
  for (const o of byKind("HorizontalPodAutoscaler")) {
    const t = o.obj.spec.scaleTargetRef;
    if (!find(t.kind, t.name)) problem(label(o), `scaleTargetRef ${t.kind}/${t.name}: no such object`);
    if ((o.obj.spec.minReplicas ?? 1) < 2) problem(label(o), "minReplicas below 2: one replica is no balancing");
  }
  for (const o of byKind("CronJob")) {
    const script = JSON.stringify(o.obj.spec.jobTemplate?.spec?.template?.spec?.containers || []);
    if (configEnv.SHOPKEEPER_EVENT_LOG && !/--events-from/.test(script))
      problem(label(o), "trains without --events-from: the events the servers collected would never reach a model");
    const fields = o.obj.spec.schedule.trim().split(/\s+/);
    if (fields.length !== 5) problem(label(o), `schedule "${o.obj.spec.schedule}" is not 5 cron fields`);
    const pod = o.obj.spec.jobTemplate?.spec?.template?.spec || {};
    checkContainers(label(o), pod, { server: null });
    const claims = (pod.volumes || []).map((v) => v.persistentVolumeClaim?.claimName).filter(Boolean);
    const modelsClaim = sets[0]?.obj.spec.template.spec.volumes?.find((v) => v.name === "models")?.persistentVolumeClaim?.claimName;
    if (modelsClaim && !claims.includes(modelsClaim)) problem(label(o), `does not write the servers' model volume ${modelsClaim}`);
  }
  for (const o of byKind("PersistentVolumeClaim")) {
    const used = objects.some((u) => JSON.stringify(u.obj).includes(`"claimName":"${o.obj.metadata.name}"`));
    if (!used) problem(label(o), "no pod uses it");
  }
  for (const o of byKind("Ingress")) {
    for (const a of ["upstream-hash-by", "affinity", "session-cookie-name"])
      if (o.obj.metadata.annotations?.[`nginx.ingress.kubernetes.io/${a}`])
        problem(label(o), `nginx.ingress.kubernetes.io/${a}: customer affinity is retired; every replica knows every customer (round-robin)`);
    for (const rule of o.obj.spec.rules || [])
      for (const p of rule.http?.paths || []) {
        const svc = find("Service", p.backend?.service?.name);
        if (!svc) problem(label(o), `backend ${p.backend?.service?.name}: no such Service`);
        else if (!(svc.obj.spec.ports || []).some((sp) => sp.name === p.backend.service.port?.name || sp.port === p.backend.service.port?.number))
          problem(label(o), `backend port ${JSON.stringify(p.backend.service.port)} is not a port of ${svc.obj.metadata.name}`);
      }
  }

  if (!problems.length)
    console.log(`k8s: ${dir}: ${objects.length} objects in ${files.length} files valid (schemas and cross-checks)`);
  return problems;
}
