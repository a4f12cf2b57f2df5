// The vision web page: upload an image to POST /v1/analyze, draw every
// detection over it, show the task timeline and the worker pools
// (GET /v1/workers). Plain JavaScript, no build step.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  // What the API's error codes (pkg/api/errors.go) mean to a person.
  const MESSAGES = {
    empty_image: 'The file is empty: there is no image in it.',
    missing_file_field: 'The upload carried no image.',
    bad_query: 'The service did not accept the request options.',
    too_large: 'This image is too large for the service. Try a smaller one, or a JPEG.',
    unsupported_content_type: 'This kind of file cannot be analysed. Use a JPEG, PNG or GIF image.',
    not_an_image: 'This file is not an image the service can read. Use a JPEG, PNG or GIF image.',
    corrupt_image: 'This image is damaged: it cannot be read.',
    truncated_image: 'This image is incomplete: the file was cut short.',
    too_many_pixels: 'This image has too many pixels. Try a smaller one.',
    overloaded: 'The service is busy right now. Try again in a moment.',
    nats_unavailable: 'The service cannot reach its workers right now (no connection to NATS). Try again in a moment.',
    unauthorized: 'This service needs an API key. Enter it above and try again.',
    internal: 'Something went wrong inside the service.',
  };
  // What each task status means (one task of an answer).
  const STATUS = {
    ok: 'done',
    error: 'the worker failed',
    timeout: 'no answer in time',
    unavailable: 'no worker running',
  };
  const TASK_COLOURS = { vehicle: '#1c7ed6', plate: '#f08c00', face: '#2f9e44' };

  const state = {
    file: null, // the image last chosen
    url: null, // its object URL
    runs: {}, // by mode: the last answer for this file
    busy: false,
  };

  function taskColour(task) {
    if (TASK_COLOURS[task]) return TASK_COLOURS[task];
    let h = 0;
    for (const c of task) h = (h * 31 + c.charCodeAt(0)) % 360;
    return `hsl(${h} 65% 45%)`;
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k === 'style') e.style.cssText = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  function svg(tag, attrs = {}) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  const fmtMS = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`);
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

  // --- API key ---------------------------------------------------------

  function apiHeaders() {
    const key = $('apikey').value.trim();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  function needKey() {
    $('keyrow').hidden = false;
    $('apikey').focus();
  }

  // --- status and errors -------------------------------------------------

  function setState(s, text) {
    document.body.dataset.state = s;
    $('status').textContent = text || '';
  }

  function showError(text, warn = false) {
    const e = $('error');
    e.textContent = text;
    e.classList.toggle('warn', warn);
    e.hidden = !text;
  }

  // errorText turns a failed answer into words.
  function errorText(status, body) {
    if (body && typeof body.code === 'string') {
      if (body.code === 'unauthorized') needKey();
      return MESSAGES[body.code] || `The service refused the image: ${body.error || body.code}.`;
    }
    switch (status) {
      case 413: return MESSAGES.too_large;
      case 415: return MESSAGES.not_an_image;
      case 401: needKey(); return MESSAGES.unauthorized;
      case 429: case 503: return MESSAGES.overloaded;
      default: return `The service answered with an error (HTTP ${status}).`;
    }
  }

  // jobText says what an analysis answer with tasks means as a whole.
  function jobText(status, resp) {
    const tasks = Object.entries(resp.tasks || {});
    const failed = tasks.filter(([, t]) => t.status !== 'ok');
    if (failed.length === 0) return '';
    const list = failed.map(([name, t]) => `${name}: ${STATUS[t.status] || t.status}`).join('; ');
    if (failed.every(([, t]) => t.status === 'unavailable')) {
      return `No worker is running for ${failed.length === tasks.length ? 'any task' : 'some tasks'} (${list}). Start one with: go run ./workers -task ${failed[0][0]}`;
    }
    if (status === 504) return `No task answered in time (${list}).`;
    if (status === 502) return `Every task failed (${list}).`;
    return `Some tasks have no result (${list}).`;
  }

  // --- analysis ------------------------------------------------------------

  function mode() {
    return $('serial').checked ? 'serial' : 'concurrent';
  }

  function choose(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith('image/')) {
      showError(MESSAGES.not_an_image);
      return;
    }
    if (state.url) URL.revokeObjectURL(state.url);
    state.file = file;
    state.url = URL.createObjectURL(file);
    state.runs = {};
    // The last image's result is not this one's.
    $('result').hidden = true;
    $('timeline').hidden = true;
    state.orientation = 1;
    exifOrientation(file).then((o) => {
      if (state.file !== file) return; // another image was chosen meanwhile
      state.orientation = o;
      analyze();
    });
  }

  async function analyze() {
    if (!state.file || state.busy) return;
    const file = state.file;
    const m = mode();
    state.busy = true;
    showError('');
    setState('busy', `Analysing ${state.file.name || 'the image'} (${m})…`);
    const form = new FormData();
    form.append('file', state.file, state.file.name || 'image');
    let resp;
    let body = null;
    try {
      resp = await fetch(`/v1/analyze?mode=${m}`, { method: 'POST', body: form, headers: apiHeaders() });
      body = await resp.json().catch(() => null);
    } catch (err) {
      state.busy = false;
      setState('error', '');
      showError(`The service cannot be reached: ${err.message}. Is the orchestrator running?`);
      return;
    }
    state.busy = false;
    if (state.file !== file) {
      analyze(); // another image was chosen meanwhile
      return;
    }
    if (!body || !body.tasks) {
      setState('error', '');
      showError(errorText(resp.status, body));
      return;
    }
    state.runs[m] = body;
    render(body);
    const problem = jobText(resp.status, body);
    showError(problem, resp.status === 207);
    setState('done', `${m === 'serial' ? 'Serial' : 'Concurrent'} run: ${fmtMS(body.elapsed_ms)} for ${Object.keys(body.tasks).length} tasks.`);
    refreshWorkers();
    if (mode() !== m && !state.runs[mode()]) analyze(); // the switch moved meanwhile
  }

  function render(resp) {
    drawImage(resp);
    listTasks(resp);
    drawTimelines();
  }

  // detectionsOf returns a task result's detections in the documented shape
  // ({"detections":[{"label","score","box":{"x","y","w","h"},"text"?}]}),
  // skipping anything else; null or missing means none.
  function detectionsOf(result) {
    if (!result || !Array.isArray(result.detections)) return [];
    return result.detections.filter((d) => d && typeof d === 'object' && d.box &&
      [d.box.x, d.box.y, d.box.w, d.box.h].every((v) => num(v) !== null));
  }

  // exifOrientation reads a JPEG's EXIF orientation (1 to 8; 1 when there
  // is none). Browsers show photos turned upright by it, while the
  // analyzers see the pixels as stored: boxes must be turned the same way.
  async function exifOrientation(file) {
    try {
      const v = new DataView(await file.slice(0, 256 * 1024).arrayBuffer());
      if (v.getUint16(0) !== 0xFFD8) return 1;
      for (let off = 2; off + 4 <= v.byteLength;) {
        const marker = v.getUint16(off);
        if ((marker & 0xFF00) !== 0xFF00 || marker === 0xFFDA) return 1; // no marker, or start of scan
        if (marker === 0xFFE1 && v.getUint32(off + 4) === 0x45786966 && v.getUint16(off + 8) === 0) { // "Exif\0\0"
          const tiff = off + 10;
          const le = v.getUint16(tiff) === 0x4949;
          const ifd = tiff + v.getUint32(tiff + 4, le);
          for (let i = 0, n = v.getUint16(ifd, le); i < n; i++) {
            const e = ifd + 2 + i * 12;
            if (v.getUint16(e, le) === 0x0112) {
              const o = v.getUint16(e + 8, le);
              return o >= 1 && o <= 8 ? o : 1;
            }
          }
          return 1;
        }
        off += 2 + v.getUint16(off + 2);
      }
    } catch (err) {
      // A short or odd file: shown as stored.
    }
    return 1;
  }

  // orient returns the function that maps a point of the stored W×H image
  // to the upright image of EXIF orientation o, and the upright size.
  function orient(o, W, H) {
    const maps = {
      2: (x, y) => [W - x, y], 3: (x, y) => [W - x, H - y], 4: (x, y) => [x, H - y],
      5: (x, y) => [y, x], 6: (x, y) => [H - y, x], 7: (x, y) => [H - y, W - x], 8: (x, y) => [y, W - x],
    };
    return { map: maps[o] || ((x, y) => [x, y]), w: o >= 5 ? H : W, h: o >= 5 ? W : H };
  }

  async function drawImage(resp) {
    const img = $('photo');
    const view = $('view');
    view.replaceChildren();
    $('result').hidden = false;
    if (img.getAttribute('src') !== state.url) img.src = state.url;
    try {
      await img.decode();
    } catch (err) {
      // The browser cannot show this image; the boxes are drawn anyway.
    }
    const W = resp.image.width;
    const H = resp.image.height;
    let o = state.orientation;
    // A browser that did not turn the photo shows it as stored.
    if (o >= 5 && img.naturalWidth === W && img.naturalHeight === H && W !== H) o = 1;
    const up = orient(o, W, H);
    view.setAttribute('viewBox', `0 0 ${up.w} ${up.h}`);
    // Text is sized for the screen: one image pixel is k screen pixels.
    const shown = img.getBoundingClientRect().width || up.w;
    const k = up.w / shown;
    const fs = 13 * k;
    let count = 0;
    for (const [task, t] of Object.entries(resp.tasks)) {
      if (t.status !== 'ok') continue;
      // Boxes are in pixels of the image as the analyzer saw it.
      const sx = num(t.result && t.result.width) ? W / t.result.width : 1;
      const sy = num(t.result && t.result.height) ? H / t.result.height : 1;
      const colour = taskColour(task);
      for (const d of detectionsOf(t.result)) {
        const [x0, y0] = up.map(d.box.x * sx, d.box.y * sy);
        const [x1, y1] = up.map((d.box.x + d.box.w) * sx, (d.box.y + d.box.h) * sy);
        const x = Math.min(x0, x1);
        const y = Math.min(y0, y1);
        const w = Math.abs(x1 - x0);
        const h = Math.abs(y1 - y0);
        const g = svg('g', { class: 'detection', 'data-task': task });
        const rect = svg('rect', { class: 'box', x, y, width: w, height: h, stroke: colour });
        const title = svg('title');
        const score = num(d.score) !== null ? ` ${Math.round(d.score * 100)}%` : '';
        title.textContent = `${task}: ${d.label || '?'}${score}${d.text ? ` “${d.text}”` : ''}`;
        rect.append(title);
        const above = y - 0.35 * fs > fs;
        const label = svg('text', {
          class: 'label', x: x + 0.2 * fs, y: above ? y - 0.35 * fs : y + 1.1 * fs,
          'font-size': fs, 'stroke-width': 3 * k,
        });
        label.textContent = `${d.label || task}${score}`;
        g.append(rect, label);
        if (d.text) {
          const right = x + w + 0.4 * fs + fs * 0.6 * d.text.length < up.w;
          const text = svg('text', {
            class: 'plate-text', x: right ? x + w + 0.4 * fs : x, y: right ? y + h / 2 + 0.45 * fs : y + h + 1.4 * fs,
            'font-size': 1.4 * fs, 'stroke-width': 3.5 * k,
          });
          text.textContent = d.text;
          g.append(text);
        }
        view.append(g);
        count++;
      }
    }
    const info = resp.image;
    $('caption').textContent = `${info.width}×${info.height} ${info.format}, ${(info.bytes / 1024).toFixed(1)} KiB: ` +
      `${count} detection${count === 1 ? '' : 's'} in ${fmtMS(resp.elapsed_ms)} (${resp.mode}).` +
      (o > 1 ? ` Shown upright (EXIF orientation ${o}), boxes turned with it.` : '');
  }

  function listTasks(resp) {
    const box = $('tasks');
    box.replaceChildren();
    for (const [task, t] of Object.entries(resp.tasks)) {
      const card = el('article', { class: 'task', 'data-task': task, 'data-status': t.status, style: `--task: ${taskColour(task)}` });
      card.append(el('h3', {}, el('span', {}, task), el('span', { class: `badge status-${t.status}` }, STATUS[t.status] || t.status)));
      if (t.status === 'ok') {
        const ds = detectionsOf(t.result);
        const model = t.result && t.result.model && t.result.model.name ? ` by ${t.result.model.name}` : '';
        card.append(el('p', { class: 'why' }, `${ds.length} detection${ds.length === 1 ? '' : 's'}${model}, ${fmtMS(t.elapsed_ms)}`));
        if (ds.length > 0) {
          const ul = el('ul');
          for (const d of ds) {
            const score = num(d.score) !== null ? ` ${Math.round(d.score * 100)}%` : '';
            ul.append(el('li', {}, `${d.label || '?'}${score}${d.text ? `: “${d.text}”` : ''}`));
          }
          card.append(ul);
        }
      } else {
        const why = t.error && t.error.message ? t.error.message : STATUS[t.status];
        card.append(el('p', { class: 'why' }, `${why} (after ${fmtMS(t.elapsed_ms)}${t.attempts > 1 ? `, ${t.attempts} attempts` : ''})`));
      }
      if (t.result !== undefined) {
        card.append(el('details', {}, el('summary', {}, 'raw result'), el('pre', {}, JSON.stringify(t.result, null, 2))));
      }
      box.append(card);
    }
  }

  // drawTimelines shows one timeline per mode run on this image, on one
  // scale, so serial and concurrent compare at a glance.
  function drawTimelines() {
    const box = $('timelines');
    box.replaceChildren();
    const runs = ['concurrent', 'serial'].filter((m) => state.runs[m]).map((m) => state.runs[m]);
    if (runs.length === 0) return;
    const sumOf = (r) => Object.values(r.tasks).reduce((s, t) => s + (num(t.elapsed_ms) || 0), 0);
    const scale = Math.max(1, ...runs.map((r) => Math.max(r.elapsed_ms, sumOf(r),
      ...Object.values(r.tasks).map((t) => (num(t.started_ms) || 0) + (num(t.elapsed_ms) || 0)))));
    const pct = (ms) => `${Math.max(0, Math.min(100, (ms / scale) * 100))}%`;
    for (const r of runs) {
      const sum = sumOf(r);
      const run = el('div', { class: 'run', 'data-mode': r.mode });
      run.append(el('h3', {}, `${r.mode}: ${fmtMS(r.elapsed_ms)} in total` +
        (r.mode === 'concurrent' ? `, ${fmtMS(sum)} one after another` : '')));
      // In the order the tasks were sent (serial runs go down the stairs).
      const order = Object.entries(r.tasks).sort(([a, ta], [b, tb]) =>
        (num(ta.started_ms) || 0) - (num(tb.started_ms) || 0) || a.localeCompare(b));
      for (const [task, t] of order) {
        const start = num(t.started_ms) || 0;
        const took = num(t.elapsed_ms) || 0;
        const bar = el('div', {
          class: `bar task-bar status-${t.status}`, 'data-task': task, 'data-status': t.status,
          style: `left: ${pct(start)}; width: ${pct(took)}`,
          title: `${task}: ${STATUS[t.status] || t.status}, sent at ${fmtMS(start)}, took ${fmtMS(took)}` +
            (t.worker ? `, worker ${t.worker}` : '') + (t.attempts > 1 ? `, ${t.attempts} attempts` : ''),
        }, el('span', {}, fmtMS(took)));
        run.append(el('div', { class: 'row' }, el('div', { class: 'name' }, task), el('div', { class: 'lane' }, bar)));
      }
      run.append(el('div', { class: 'row' }, el('div', { class: 'name' }, 'total'),
        el('div', { class: 'lane' }, el('div', { class: 'bar total', style: `left: 0; width: ${pct(r.elapsed_ms)}`, title: 'the whole request' },
          el('span', {}, fmtMS(r.elapsed_ms))))));
      run.append(el('div', { class: 'row' }, el('div', { class: 'name' }, 'one after another'),
        el('div', { class: 'lane' }, el('div', { class: 'bar ghost', style: `left: 0; width: ${pct(sum)}`, title: 'the sum of the task times: what a serial run takes' },
          el('span', {}, fmtMS(sum))))));
      box.append(run);
    }
    $('timeline').hidden = false;
  }

  // --- worker pools ------------------------------------------------------

  let workersTimer = null;

  async function refreshWorkers() {
    clearTimeout(workersTimer);
    workersTimer = setTimeout(refreshWorkers, 5000);
    if (document.visibilityState === 'hidden') return;
    const note = $('workers-note');
    let resp;
    let body = null;
    try {
      resp = await fetch('/v1/workers', { headers: apiHeaders() });
      body = await resp.json().catch(() => null);
    } catch (err) {
      note.textContent = `The service cannot be reached: ${err.message}.`;
      return;
    }
    if (!resp.ok || !body || !Array.isArray(body.tasks)) {
      note.textContent = resp.status === 401 ? 'Enter the API key above to see the worker pools.' : errorText(resp.status, body);
      if (resp.status === 401) $('keyrow').hidden = false;
      return;
    }
    const rows = body.tasks.map((p) => {
      const ids = (p.workers || []).map((w) => w.id).join(', ');
      return el('tr', { 'data-task': p.task, class: p.replicas === 0 ? 'down' : '' },
        el('th', { scope: 'row' }, p.task),
        el('td', { class: 'num', title: ids || 'no replica answered' }, p.replicas === 0 ? 'none' : String(p.replicas)),
        el('td', { class: 'num' }, String(p.done)),
        el('td', { class: 'num', title: `failed ${p.failed}, expired ${p.expired}, refused (busy) ${p.refused}` }, String(p.failed + p.expired)),
        el('td', { class: 'num' }, p.done + p.failed > 0 ? fmtMS(p.avg_ms) : '–'),
        el('td', { class: 'num' }, `${p.in_flight} / ${p.concurrency}`));
    });
    $('pools').replaceChildren(...rows);
    const down = body.tasks.filter((p) => p.replicas === 0).map((p) => p.task);
    note.textContent = down.length ? `No worker is running for ${down.join(', ')}: its jobs come back as "no worker running".` :
      `Every task has a worker. Asked ${new Date(body.at).toLocaleTimeString()} in ${fmtMS(body.elapsed_ms)}.`;
  }

  // --- wiring --------------------------------------------------------------

  function init() {
    for (const id of ['file', 'camera']) {
      $(id).addEventListener('change', (e) => {
        choose(e.target.files[0]);
        e.target.value = ''; // choosing the same file again runs it again
      });
    }
    const drop = $('drop');
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      choose(e.dataTransfer.files[0]);
    });
    drop.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file').click(); }
    });
    // Anywhere on the page is fine to drop on.
    document.addEventListener('dragover', (e) => e.preventDefault());
    document.addEventListener('drop', (e) => {
      e.preventDefault();
      if (e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
    });
    // The switch runs the same image again in the other mode; both
    // timelines stay on the page.
    $('serial').addEventListener('change', () => {
      if (state.file && !state.runs[mode()]) analyze();
      else if (state.runs[mode()]) render(state.runs[mode()]);
    });
    const key = $('apikey');
    key.value = sessionStorage.getItem('vision-api-key') || '';
    if (key.value) $('keyrow').hidden = false;
    key.addEventListener('change', () => {
      sessionStorage.setItem('vision-api-key', key.value.trim());
      refreshWorkers();
    });
    window.addEventListener('resize', () => {
      const last = state.runs[mode()];
      if (last) drawImage(last);
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') refreshWorkers();
    });
    refreshWorkers();
  }

  init();
})();
