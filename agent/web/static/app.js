// The cashier page: shows the member a card identifies, lets the cashier
// type a card number, enrol a member and try a quote with points. Talks
// only to the local agent (no internet). Money is integer fen throughout.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  // ---- text (zh / en) ----
  const T = {
    zh: {
      title: '会员收银', stream: '实时连接', apiToken: '接口令牌', connect: '连接', member: '会员',
      waiting: '请刷卡，或输入卡号', memberId: '会员号', mobile: '手机', points: '积分', confirmed: '已确认',
      pending: '待同步', storedValue: '储值', negative: '积分为负：退货收回了已使用的积分，请告知顾客',
      coupons: '优惠券', unknownCard: '未登记的卡', enrolThisCard: '用此卡办理入会',
      typeCard: '刷不出卡？输入卡号', byCard: '卡号', byMobile: '手机号', byMemberId: '会员号',
      lookup: '查询', clear: '清除', quote: '试算 / 积分抵扣', sku: '商品', qty: '数量', price: '单价(元)',
      discountable: '可打折', addLine: '加一行', coupon: '优惠券', none: '不用', redeem: '抵扣积分',
      calc: '计算', gross: '原价', discount: '会员折扣', couponValue: '优惠券', redeemValue: '积分抵扣',
      due: '应付', earned: '本单积分', enrol: '办理入会', name: '姓名', birthday: '生日 (MM-DD)',
      cardNo: '卡号', cardSwiped: '已刷卡', referrer: '推荐人 (会员号或手机)', enrolGo: '入会',
      offlineNote: '本页面由收银机本地代理提供，断网也可使用。',
      active: '活跃', at_risk: '有流失风险', dormant: '沉睡', online: '在线', offline: '离线',
      noDevices: '未配置读卡器', syncOff: '未连接总部', syncOk: '已同步', syncBehind: '待上传',
      enrolled: '入会成功', remove: '删', noCoupons: '无可用券', until: '有效期至', off: '减',
      from: '满', notFound: '未找到会员', readError: '读卡失败', needToken: '请输入接口令牌',
      removeLine: '删除', swipeAgain: '请重新刷卡',
    },
    en: {
      title: 'Member desk', stream: 'live link', apiToken: 'API token', connect: 'Connect', member: 'Member',
      waiting: 'Swipe a card, or type the card number', memberId: 'Member id', mobile: 'Mobile',
      points: 'Points', confirmed: 'confirmed', pending: 'pending', storedValue: 'Stored value',
      negative: 'Points below zero: a refund took back points already spent; tell the customer',
      coupons: 'Coupons', unknownCard: 'Card not registered', enrolThisCard: 'Enrol with this card',
      typeCard: "Stripe won't read? Type the card number", byCard: 'Card no.', byMobile: 'Mobile',
      byMemberId: 'Member id', lookup: 'Look up', clear: 'Clear', quote: 'Quote / redeem points',
      sku: 'Item', qty: 'Qty', price: 'Unit price (¥)', discountable: 'Discount', addLine: 'Add line',
      coupon: 'Coupon', none: 'none', redeem: 'Redeem points', calc: 'Calculate', gross: 'Gross',
      discount: 'Member discount', couponValue: 'Coupon', redeemValue: 'Points redeemed', due: 'Due',
      earned: 'Points earned', enrol: 'Enrol a member', name: 'Name', birthday: 'Birthday (MM-DD)',
      cardNo: 'Card no.', cardSwiped: 'Card swiped', referrer: 'Referrer (member id or mobile)',
      enrolGo: 'Enrol', offlineNote: 'Served by the till agent; works without internet.',
      active: 'active', at_risk: 'at risk', dormant: 'dormant', online: 'online', offline: 'offline',
      noDevices: 'no readers configured', syncOff: 'no HQ link', syncOk: 'synced', syncBehind: 'to upload',
      enrolled: 'Enrolled', remove: 'x', noCoupons: 'no usable coupons', until: 'until', off: 'off',
      from: 'from', notFound: 'No member found', readError: 'Read failed', needToken: 'Enter the API token',
      removeLine: 'remove', swipeAgain: 'Swipe the card again',
    },
  };
  let lang = localStorage.getItem('posagent.lang') || (new URLSearchParams(location.search).get('lang')) || 'zh';
  const t = (k) => (T[lang] && T[lang][k]) || T.en[k] || k;

  function applyLang() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
    $('lang').textContent = lang === 'zh' ? 'EN' : '中文';
    if (current) showMember(current);
    renderStatus();
  }

  // ---- money: fen integers in, strings out; yuan text → fen without floats ----
  function yuan(fen) {
    const neg = fen < 0; fen = Math.abs(fen);
    const s = '¥' + Math.trunc(fen / 100) + '.' + String(fen % 100).padStart(2, '0');
    return neg ? '-' + s : s;
  }
  function toFen(text) {
    const m = /^\s*(\d{1,10})(?:\.(\d{1,2}))?\s*$/.exec(text);
    if (!m) return null;
    return parseInt(m[1], 10) * 100 + (m[2] ? parseInt(m[2].padEnd(2, '0'), 10) : 0);
  }

  // ---- API ----
  let token = document.querySelector('meta[name="posagent-token"]').content;
  if (!token || token.indexOf('{{') === 0) token = sessionStorage.getItem('posagent.token') || '';
  const till = new URLSearchParams(location.search).get('till') || '';

  async function api(method, path, body) {
    const opts = { method, headers: { Authorization: 'Bearer ' + token } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (res.status === 401) { askToken(); }
    if (!res.ok) {
      const err = new Error((data && ((lang === 'zh' && data.message_zh) || data.message)) || res.statusText);
      err.code = data && data.code; err.status = res.status;
      throw err;
    }
    return data;
  }

  function say(text, kind) {
    const m = $('message');
    m.textContent = text;
    m.className = kind || 'info';
    m.hidden = !text;
  }

  function askToken() {
    $('login').hidden = false;
  }

  // ---- member ----
  let current = null;
  function showMember(m) {
    if (!current || current.member.id !== m.member.id) $('quote-result').hidden = true;
    current = m;
    $('member-empty').hidden = true;
    $('unknown-card').hidden = true;
    $('member').hidden = false;
    $('member-name').textContent = m.member.name;
    $('member-tier').textContent = (lang === 'zh' ? m.tier_name_zh : m.tier_name_en) || m.tier;
    $('member-state').textContent = t(m.state);
    $('member-state').className = 'state ' + m.state;
    $('member-id').textContent = m.member.id;
    $('member-mobile').textContent = m.masked_mobile || '—';
    $('member-points').textContent = m.points;
    $('member-points-confirmed').textContent = m.points_confirmed;
    $('member-points-pending').textContent = m.points_pending;
    $('member-stored').textContent = yuan(m.stored_value);
    $('member-negative').hidden = !m.negative;
    const ul = $('member-coupons');
    ul.textContent = '';
    const sel = $('quote-coupon');
    sel.length = 1;
    if (!m.coupons.length) {
      const li = document.createElement('li'); li.textContent = t('noCoupons'); ul.appendChild(li);
    }
    m.coupons.forEach((c) => {
      const li = document.createElement('li');
      const cond = c.threshold > 0 ? t('from') + yuan(c.threshold) + ' ' : '';
      li.textContent = c.name + ': ' + cond + t('off') + yuan(c.value) + ' (' + t('until') + ' ' + c.valid_until.slice(0, 10) + ')';
      li.dataset.coupon = c.id;
      ul.appendChild(li);
      const o = document.createElement('option'); o.value = c.id; o.textContent = c.name; sel.appendChild(o);
    });
  }
  function clearMember() {
    current = null;
    $('member').hidden = true;
    $('unknown-card').hidden = true;
    $('member-empty').hidden = false;
    $('quote-coupon').length = 1;
    $('quote-result').hidden = true;
  }
  let unknownHash = '';
  function showUnknown(d) {
    clearMember();
    $('member-empty').hidden = true;
    unknownHash = d.card_hash;
    $('unknown-masked').textContent = d.masked || '';
    $('unknown-card').hidden = false;
  }

  $('card-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = $('card-input').value.trim();
    if (!v) return;
    const body = {}; body[$('lookup-by').value] = v;
    try {
      showMember(await api('POST', '/v1/members/lookup', body));
      $('card-input').value = '';
      say('');
    } catch (e) {
      say(e.message, 'error');
    }
  });
  $('member-clear').addEventListener('click', () => { clearMember(); say(''); });
  $('enrol-this-card').addEventListener('click', () => {
    $('enrol-card-hash').value = unknownHash;
    $('enrol-card').value = '';
    $('enrol-card-masked').textContent = $('unknown-masked').textContent;
    $('enrol-card-swiped').hidden = false;
    $('enrol-name').focus();
  });

  // ---- enrol ----
  function newId(prefix) {
    const a = new Uint8Array(8); crypto.getRandomValues(a);
    return prefix + Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  let enrolId = newId('web-enrol-');
  $('enrol-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { enrol_id: enrolId, name: $('enrol-name').value.trim() };
    if (till) body.till = till;
    const mobile = $('enrol-mobile').value.trim(); if (mobile) body.mobile = mobile;
    const bd = $('enrol-birthday').value.trim(); if (bd) body.birthday = bd;
    const card = $('enrol-card').value.trim();
    const hash = $('enrol-card-hash').value;
    if (card) body.card = card; else if (hash) body.card_hash = hash;
    const ref = $('enrol-referrer').value.trim();
    if (ref) body.referrer = /^\+?\d{6,15}$/.test(ref) ? { mobile: ref } : { member_id: ref };
    try {
      const res = await api('POST', '/v1/members', body);
      showMember(res.member);
      say(t('enrolled') + ': ' + res.member.member.name + ' (' + res.member.member.id + ')', 'ok');
      $('enrol-form').reset();
      $('enrol-card-hash').value = '';
      $('enrol-card-swiped').hidden = true;
      enrolId = newId('web-enrol-'); // the next enrolment is a new one; a retry of this one kept the id
    } catch (e) {
      say(e.message, 'error');
    }
  });

  // ---- quote ----
  function addLine(sku, qty, price) {
    const tr = document.createElement('tr');
    tr.innerHTML = '<td><input class="l-sku"></td><td><input class="l-qty" type="number" min="1" value="1"></td>' +
      '<td><input class="l-price" inputmode="decimal"></td><td><input class="l-disc" type="checkbox" checked></td>' +
      '<td><button type="button" class="l-del">×</button></td>';
    tr.querySelector('.l-sku').value = sku || '';
    if (qty) tr.querySelector('.l-qty').value = qty;
    tr.querySelector('.l-price').value = price || '';
    tr.querySelector('.l-del').addEventListener('click', () => tr.remove());
    $('lines').tBodies[0].appendChild(tr);
  }
  $('add-line').addEventListener('click', () => addLine());
  addLine();
  $('quote-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const lines = [];
    for (const tr of $('lines').tBodies[0].rows) {
      const sku = tr.querySelector('.l-sku').value.trim();
      if (!sku) continue;
      const price = toFen(tr.querySelector('.l-price').value);
      if (price === null) { say(t('price') + '?', 'error'); return; }
      lines.push({ sku, qty: parseInt(tr.querySelector('.l-qty').value, 10) || 1, unit_price: price,
        discountable: tr.querySelector('.l-disc').checked });
    }
    const body = { lines, redeem_points: parseInt($('quote-redeem').value, 10) || 0 };
    if (till) body.till = till;
    if (current) body.member_id = current.member.id;
    if ($('quote-coupon').value) body.coupon_id = $('quote-coupon').value;
    try {
      const q = await api('POST', '/v1/quote', body);
      $('q-gross').textContent = yuan(q.gross);
      $('q-discount').textContent = yuan(q.discount);
      $('q-coupon').textContent = yuan(q.coupon_value);
      $('q-redeem').textContent = yuan(q.redeem_value) + ' (' + q.redeem_points + ')';
      $('q-due').textContent = yuan(q.due);
      $('q-earned').textContent = q.points_earned + (q.multiplier > 1 ? ' (×' + q.multiplier + ')' : '');
      $('quote-result').hidden = false;
      const ul = $('quote-reasons'); ul.textContent = '';
      (q.reasons || []).forEach((r) => { const li = document.createElement('li'); li.textContent = r; ul.appendChild(li); });
      say('');
    } catch (e) {
      say(e.message, 'error');
    }
  });

  // ---- status ----
  let status = null;
  function renderStatus() {
    if (!status) return;
    $('where').textContent = status.store + ' / ' + (till || status.till);
    const dev = $('devices'); dev.textContent = '';
    if (!status.devices.length) dev.textContent = t('noDevices');
    status.devices.forEach((d) => {
      const s = document.createElement('span');
      s.className = 'device ' + (d.online ? 'on' : 'off');
      s.dataset.device = d.name;
      s.textContent = d.name + ': ' + t(d.online ? 'online' : 'offline');
      if (d.detail) s.title = d.detail;
      dev.appendChild(s);
    });
    const sy = status.sync || {};
    const el = $('sync');
    if (!sy.configured) el.textContent = t('syncOff') + (sy.backlog ? ' · ' + sy.backlog + ' ' + t('syncBehind') : '');
    else el.textContent = (sy.online ? t('syncOk') : t('offline')) + (sy.backlog ? ' · ' + sy.backlog + ' ' + t('syncBehind') : '');
    el.className = sy.configured && sy.online ? 'on' : 'off';
  }
  async function loadStatus() {
    try { status = await api('GET', '/v1/status'); renderStatus(); } catch (e) { /* shown on next event */ }
  }

  // ---- event stream: fetch-based SSE so the token goes in a header ----
  let lastId = '';
  let backoff = 500;
  async function stream() {
    const url = '/v1/events' + (till ? '?till=' + encodeURIComponent(till) : '');
    for (;;) {
      const headers = { Authorization: 'Bearer ' + token };
      if (lastId) headers['Last-Event-ID'] = lastId;
      let resumeNow = false;
      try {
        const res = await fetch(url, { headers, cache: 'no-store' });
        if (res.status === 401) { askToken(); $('stream').className = 'dot off'; return; }
        if (!res.ok || !res.body) throw new Error('stream ' + res.status);
        $('stream').className = 'dot on';
        backoff = 500;
        if (lastId) loadStatus();
        const reader = res.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            let data = '', id = '';
            block.split('\n').forEach((line) => {
              if (line.startsWith('data:')) data += line.slice(5).trim();
              else if (line.startsWith('id:')) id = line.slice(3).trim();
            });
            if (id) lastId = id;
            if (data) {
              const ev = JSON.parse(data);
              if (ev.type === 'resume') resumeNow = true;
              handle(ev);
            }
          }
        }
      } catch (e) { /* reconnect below */ }
      $('stream').className = 'dot off';
      if (!resumeNow) {
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 10000);
      }
    }
  }

  function handle(ev) {
    const d = ev.data || {};
    switch (ev.type) {
      case 'member':
        showMember(d.member);
        say('');
        break;
      case 'card_unknown':
        showUnknown(d);
        say(t('unknownCard') + ' ' + (d.masked || ''), 'warn');
        break;
      case 'read_error':
        say(t('readError') + ': ' + ((lang === 'zh' ? d.hint_zh : d.hint) || d.hint || t('swipeAgain')), 'error');
        break;
      case 'device':
      case 'sync':
      case 'reset':
        loadStatus();
        break;
    }
  }

  $('lang').addEventListener('click', () => {
    lang = lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('posagent.lang', lang);
    applyLang();
  });
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('login-token').value.trim();
    sessionStorage.setItem('posagent.token', token);
    $('login').hidden = true;
    loadStatus();
    stream();
  });

  applyLang();
  if (!token) { askToken(); say(t('needToken'), 'warn'); return; }
  loadStatus();
  stream();
  window.posagentReady = true;
})();
