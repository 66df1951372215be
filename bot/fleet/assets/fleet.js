(() => {
  const $ = (s) => document.querySelector(s);
  let data = JSON.parse($('#fleet-data').textContent);
  let sortKey = 'urgency', sortDir = -1, etag = null;
  const el = (tag, text, cls) => { const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; };
  const keyOf = {
    cluster: r => r.cluster, env: r => r.env, region: r => r.region, repo: r => r.repo,
    version: r => r.version || '', days: r => r.support.standard_days ?? -99999,
    violations: r => r.policy.total, secrets: r => r.secrets.length, health: r => r.health,
    pending: r => r.pending_commits, urgency: r => r.urgency,
  };
  function fillSelect(sel, values) {
    const keep = sel.value; sel.replaceChildren(el('option', 'all'));
    sel.firstChild.value = '';
    for (const v of values) { const o = el('option', v); o.value = v; sel.append(o); }
    sel.value = values.includes(keep) ? keep : '';
  }
  function counts() {
    const c = data.counts, ul = $('#counts'); ul.replaceChildren();
    const add = (label, n, cls) => { const li = el('li'); const b = el('b', n, cls); li.append(b, ' ' + label); ul.append(li); };
    add('clusters', c.clusters); add('need action', c.needs_action, c.needs_action ? 'bad' : 'state-ok');
    add('out of support', c.support.unsupported || 0, (c.support.unsupported || 0) ? 'bad' : '');
    add('in extended support', c.support.extended || 0, (c.support.extended || 0) ? 'warn' : '');
    add('policy violations', c.violations.error); add('secret findings', c.secrets);
    add('commits waiting for promotion', c.pending_commits);
    if (c.held) add('promotions held', c.held, 'warn');
    if (c.frozen) add('environments frozen', c.frozen);
  }
  function supportCell(r) {
    const td = el('td'); const s = r.support;
    const cls = s.state === 'unsupported' ? 'bad' : s.state === 'extended' ? 'warn' : s.state === 'standard' ? '' : 'mute';
    td.append(el('span', s.state, cls));
    const part = (what, d) => d < 0 ? `${what} ended ${-d}\u00a0d ago` : `${what} ends in ${d}\u00a0d`;
    if (s.standard_days !== null && s.standard_days !== undefined) {
      td.append(el('div', part('standard', s.standard_days), 'mute nowrap'),
        el('div', part('extended', s.extended_days), 'mute nowrap'));
    }
    if (!r.version) td.append(el('div', 'no cluster request gives its version', 'mute'));
    return td;
  }
  function listCell(summary, items, fmt) {
    const td = el('td');
    if (!items.length) { td.append(el('span', summary, 'mute nowrap')); return td; }
    const d = el('details'); d.append(el('summary', summary));
    const ul = el('ul', null, 'plain'); for (const i of items) ul.append(el('li', fmt(i))); d.append(ul);
    td.append(d); return td;
  }
  function frozenText(f) {
    if (!f) return '';
    return f.error ? `freeze window unreadable: ${f.error}` : `frozen until ${f.until.slice(0, 16).replace('T', ' ')} UTC (${f.reason})`;
  }
  function paused(holds, frozen) {
    const out = [];
    if (holds.length) out.push(el('div', `held: ${holds.map(h => '#' + h.number).join(', ')}`, 'warn'));
    if (frozen) out.push(el('div', frozenText(frozen), frozen.error ? 'bad' : 'mute'));
    return out;
  }
  function row(r) {
    const tr = el('tr'); tr.dataset.id = r.id;
    const th = el('th'); th.scope = 'row';
    th.append(el('div', r.cluster, 'nowrap'), el('div', `${r.repo} · ${r.apps}\u00a0${r.apps === 1 ? 'target' : 'targets'}`, 'mute nowrap')); tr.append(th);
    const na = el('td', null, r.needs_action.length ? 'state-action reasons' : 'state-ok');
    if (r.needs_action.length) { const ul = el('ul', null, 'plain'); for (const why of r.needs_action) ul.append(el('li', why)); na.append(ul); }
    else na.textContent = 'ok';
    tr.append(na);
    tr.append(el('td', r.env), el('td', r.region || '—', 'nowrap'), el('td', r.version || '—'), supportCell(r));
    const p = r.policy.by_severity;
    tr.append(listCell(`${p.error} errors, ${p.warning} warnings`, r.policy.objects,
      v => `${v.constraint}: ${v.kind} ${v.namespace ? v.namespace + '/' : ''}${v.name} — ${v.message}`));
    tr.append(listCell(`${r.secrets.length}`, r.secrets, s => `${s.path}: ${s.message}`));
    tr.append(listCell(r.addons.length ? `${r.addons.length} (${r.addons_behind} behind)` : 'none found', r.addons,
      a => `${a.name} ${a.version}${!a.recommended ? ' (no bundled version to compare)'
        : !a.current ? ' → ' + a.recommended : a.recommended !== a.version ? ' (newer than the bundled ' + a.recommended + ')' : ''}`));
    tr.append(el('td', r.health, r.health === 'failing' ? 'bad' : r.health === 'healthy' ? 'state-ok' : 'mute'));
    const pend = el('td', r.pending_commits, 'num'); pend.append(...paused(r.holds, r.frozen)); tr.append(pend);
    return tr;
  }
  function visible() {
    const env = $('#f-env').value, region = $('#f-region').value, state = $('#f-state').value;
    const q = $('#f-q').value.trim().toLowerCase();
    return data.clusters.filter(r => (!env || r.env === env) && (!region || r.region === region)
      && (!state || r.state === state || r.support.state === state
        || (state === 'paused' && (r.holds.length > 0 || !!r.frozen)))
      && (!q || `${r.cluster} ${r.repo} ${r.region} ${r.version} ${r.needs_action.join(' ')}`.toLowerCase().includes(q)));
  }
  function draw() {
    const rows = visible(), get = keyOf[sortKey];
    rows.sort((a, b) => { const x = get(a), y = get(b); return (x < y ? -1 : x > y ? 1 : 0) * sortDir
      || (b.urgency - a.urgency) || (a.cluster < b.cluster ? -1 : 1); });
    const body = $('#rows'); body.replaceChildren(...rows.map(row));
    $('#shown').textContent = `${rows.length} of ${data.clusters.length} clusters shown`;
    for (const b of document.querySelectorAll('th[data-key]')) {
      b.setAttribute('aria-sort', b.dataset.key === sortKey ? (sortDir < 0 ? 'descending' : 'ascending') : 'none');
    }
  }
  function holdsCell(e) {
    const td = el('td'); const items = paused(e.holds, e.frozen);
    if (e.holds.length) items[0].textContent = `held: ${e.holds.map(x => `#${x.number} ${x.title}`).join('; ')}`;
    if (!items.length) td.append(el('span', e.freeze.length ? `not frozen (${e.freeze.length} windows)` : '—', 'mute'));
    td.append(...items); return td;
  }
  function envs() {
    const tb = $('#envs'); tb.replaceChildren();
    $('#no-chain').hidden = data.environments.some(e => e.next_env);
    for (const e of data.environments) {
      const tr = el('tr'); const th = el('th', `${e.repo} ${e.env}`); th.scope = 'row'; tr.append(th);
      tr.append(el('td', e.branch), el('td', (e.head || '').slice(0, 7)), el('td', e.health),
        el('td', e.next_env ? `${e.pending_commits} → ${e.next_env}` : '—', 'num'),
        el('td', e.open_promotions.map(p => `#${p.number} ${p.title} (${p.gates || ''})`).join('; ') || '—'),
        el('td', e.last_promotion ? `#${e.last_promotion.number} ${e.last_promotion.title}` : '—'),
        holdsCell(e));
      tb.append(tr);
    }
  }
  function governance() {
    const tb = $('#gov'); tb.replaceChildren();
    if (!Object.keys(data.governance).length) {
      const td = el('td', document.body.dataset.live ? 'No merged pull requests recorded in the last 30 days.'
        : 'Recorded by the service as pull requests merge; a static snapshot has none.', 'empty');
      td.colSpan = 4; tb.append(el('tr')); tb.lastChild.append(td);
    }
    for (const [repo, g] of Object.entries(data.governance)) {
      const tr = el('tr'); const th = el('th', repo); th.scope = 'row'; tr.append(th);
      tr.append(el('td', g.merged, 'num'), el('td', g.signed_and_approved, 'num'));
      tr.append(listCell(`${g.bypasses.length}`, g.bypasses,
        b => `#${b.number} ${b.title} into ${b.base} (${b.merged_at}; failing: ${b.failing.join(', ')})`));
      tb.append(tr);
    }
  }
  function all() {
    fillSelect($('#f-env'), data.filters.env); fillSelect($('#f-region'), data.filters.region);
    counts(); draw(); envs(); governance();
    $('#generated').textContent = `computed ${data.generated} · EKS ${data.calendar}`;
  }
  for (const b of document.querySelectorAll('th[data-key] button')) {
    b.addEventListener('click', () => { const k = b.parentElement.dataset.key;
      sortDir = k === sortKey ? -sortDir : (k === 'urgency' || k === 'violations' ? -1 : 1); sortKey = k; draw(); });
  }
  for (const id of ['#f-env', '#f-region', '#f-state']) $(id).addEventListener('change', draw);
  $('#f-q').addEventListener('input', draw);
  document.addEventListener('keydown', e => {
    if (e.key === '/' && document.activeElement !== $('#f-q')) { e.preventDefault(); $('#f-q').focus(); }
    if (e.key === 'Escape' && document.activeElement === $('#f-q')) { $('#f-q').value = ''; draw(); }
  });
  all();
  const live = document.body.dataset.live;
  if (live) {
    const poll = async () => {
      try {
        const res = await fetch(live, { headers: etag ? { 'If-None-Match': etag } : {}, credentials: 'same-origin' });
        if (res.status === 200) { etag = res.headers.get('ETag'); data = await res.json(); all();
          $('#live').textContent = 'live · updated ' + new Date().toLocaleTimeString(); }
        else if (res.status === 401) { $('#live').textContent = 'signed out: reload to sign in'; return; }
      } catch (err) { $('#live').textContent = 'live · offline, retrying'; }
      setTimeout(poll, Number(document.body.dataset.interval || 5000));
    };
    etag = document.body.dataset.etag || null; setTimeout(poll, Number(document.body.dataset.interval || 5000));
  }
})();
