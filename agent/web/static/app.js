// The cashier page: a cashier signs in with id and PIN (on-screen keypad),
// then sees the member a card identifies, types a card number, enrols a
// member, tries a quote with points, tops up stored value and voids a sale;
// actions that need a supervisor ask for one's id and PIN at that moment.
// The session is an HttpOnly cookie the page cannot read; the CSRF token
// it sends on writes lives only in memory. Talks only to the local agent
// (no internet). Money is integer fen throughout.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  // ---- text (zh / en) ----
  const T = {
    zh: {
      title: '会员收银', stream: '实时连接', member: '会员',
      signInTitle: '收银员登录', cashierId: '收银员编号', pin: '密码', signIn: '登录', signOut: '退出',
      supervisorTitle: '需主管批准', supervisorId: '主管编号', approve: '批准', cancel: '取消',
      topup: '储值充值', amount: '金额(元)', topupGo: '为当前会员充值', void: '作废交易', receipt: '小票号',
      reason: '原因', voidGo: '作废', signedOutIdle: '长时间未操作，已自动退出，请重新登录',
      signedOut: '已退出', toppedUp: '充值成功', voided: '已作废', selectMember: '请先刷卡或查询会员',
      back: '退格', clearKey: '清空', enterIdPin: '请输入收银员编号和密码',
      waiting: '请刷卡，或输入卡号', memberId: '会员号', mobile: '手机', points: '积分', confirmed: '已确认',
      pending: '待同步', storedValue: '储值', negative: '积分为负：退货收回了已使用的积分，请告知顾客',
      coupons: '优惠券', unknownCard: '未登记的卡', enrolThisCard: '用此卡办理入会',
      typeCard: '刷不出卡？输入卡号', byCard: '卡号', byMobile: '手机号', byMemberId: '会员号', byMemberCode: '会员码',
      lookup: '查询', clear: '清除', quote: '试算 / 积分抵扣', sku: '商品', qty: '数量', price: '单价(元)',
      discountable: '可打折', addLine: '加一行', coupon: '优惠券', none: '不用', redeem: '抵扣积分',
      calc: '计算', gross: '原价', discount: '会员折扣', couponValue: '优惠券', redeemValue: '积分抵扣',
      due: '应付', earned: '本单积分', enrol: '办理入会', name: '姓名', birthday: '生日 (MM-DD)',
      cardNo: '卡号', cardSwiped: '已刷卡', referrer: '推荐人 (会员号或手机)', enrolGo: '入会',
      offlineNote: '本页面由收银机本地代理提供，断网也可使用。',
      active: '活跃', at_risk: '有流失风险', dormant: '沉睡', online: '在线', offline: '离线',
      noDevices: '未配置读卡器', syncOk: '已同步', syncBehind: '待上传',
      enrolled: '入会成功', remove: '删', noCoupons: '无可用券', until: '有效期至', off: '减',
      from: '满', notFound: '未找到会员', readError: '读卡失败',
      removeLine: '删除', swipeAgain: '请重新刷卡',
      paymentCode: '已读取付款码，请在收银系统收款',
    },
    en: {
      title: 'Member desk', stream: 'live link', member: 'Member',
      signInTitle: 'Cashier sign-in', cashierId: 'Cashier id', pin: 'PIN', signIn: 'Sign in', signOut: 'Sign out',
      supervisorTitle: 'Supervisor approval', supervisorId: 'Supervisor id', approve: 'Approve', cancel: 'Cancel',
      topup: 'Stored value top-up', amount: 'Amount (¥)', topupGo: 'Top up this member', void: 'Void a sale',
      receipt: 'Receipt no.', reason: 'Reason', voidGo: 'Void', signedOutIdle: 'Signed out after a while without use; sign in again',
      signedOut: 'Signed out', toppedUp: 'Topped up', voided: 'Voided', selectMember: 'Swipe or look up a member first',
      back: 'Back', clearKey: 'Clear', enterIdPin: 'Enter your cashier id and PIN',
      waiting: 'Swipe a card, or type the card number', memberId: 'Member id', mobile: 'Mobile',
      points: 'Points', confirmed: 'confirmed', pending: 'pending', storedValue: 'Stored value',
      negative: 'Points below zero: a refund took back points already spent; tell the customer',
      coupons: 'Coupons', unknownCard: 'Card not registered', enrolThisCard: 'Enrol with this card',
      typeCard: "Stripe won't read? Type the card number", byCard: 'Card no.', byMobile: 'Mobile',
      byMemberId: 'Member id', byMemberCode: 'Member code', lookup: 'Look up', clear: 'Clear', quote: 'Quote / redeem points',
      sku: 'Item', qty: 'Qty', price: 'Unit price (¥)', discountable: 'Discount', addLine: 'Add line',
      coupon: 'Coupon', none: 'none', redeem: 'Redeem points', calc: 'Calculate', gross: 'Gross',
      discount: 'Member discount', couponValue: 'Coupon', redeemValue: 'Points redeemed', due: 'Due',
      earned: 'Points earned', enrol: 'Enrol a member', name: 'Name', birthday: 'Birthday (MM-DD)',
      cardNo: 'Card no.', cardSwiped: 'Card swiped', referrer: 'Referrer (member id or mobile)',
      enrolGo: 'Enrol', offlineNote: 'Served by the till agent; works without internet.',
      active: 'active', at_risk: 'at risk', dormant: 'dormant', online: 'online', offline: 'offline',
      noDevices: 'no readers configured', syncOk: 'synced', syncBehind: 'to upload',
      enrolled: 'Enrolled', remove: 'x', noCoupons: 'no usable coupons', until: 'until', off: 'off',
      from: 'from', notFound: 'No member found', readError: 'Read failed',
      removeLine: 'remove', swipeAgain: 'Swipe the card again',
      paymentCode: 'Payment code read — charge it in the POS',
    },
  };
  let lang = localStorage.getItem('posagent.lang') || (new URLSearchParams(location.search).get('lang')) || 'zh';
  const t = (k) => (T[lang] && T[lang][k]) || T.en[k] || k;

  function applyLang() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
    $('lang').textContent = lang === 'zh' ? 'EN' : '中文';
    document.querySelectorAll('.keypad').forEach((k) => {
      k.querySelector('[data-key=back]').textContent = '⌫';
      k.querySelector('[data-key=back]').title = t('back');
      k.querySelector('[data-key=clear]').textContent = 'C';
      k.querySelector('[data-key=clear]').title = t('clearKey');
    });
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

  // ---- session and API ----
  // csrf is the session's CSRF token: in memory only, sent on writes.
  let csrf = '';
  let me = null;
  let idleMs = 15 * 60 * 1000;
  let lastTouch = Date.now();
  let idleTimer = null;
  let streamCtl = null;
  const till = new URLSearchParams(location.search).get('till') || '';

  function apiError(res, data) {
    const err = new Error((data && ((lang === 'zh' && data.message_zh) || data.message)) || res.statusText);
    err.code = data && data.code; err.status = res.status;
    return err;
  }

  async function call(method, path, body, extra) {
    const opts = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
    Object.assign(opts.headers, extra || {});
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw apiError(res, data);
    return data;
  }

  // api calls the agent as the signed-in cashier. A write that needs a
  // supervisor opens the approval dialog and is sent again with the
  // supervisor's id and PIN; a lost session shows the sign-in.
  async function api(method, path, body) {
    try {
      const data = await call(method, path, body);
      if (method !== 'GET') touched();
      return data;
    } catch (e) {
      if (e.code === 'supervisor_required') {
        const data = await approveAndSend(e.message, method, path, body);
        touched();
        return data;
      }
      if (e.status === 401) signedOut(t('signedOutIdle'));
      throw e;
    }
  }

  function touched() {
    lastTouch = Date.now();
    clearTimeout(idleTimer);
    idleTimer = setTimeout(checkIdle, idleMs + 500);
  }
  function checkIdle() {
    if (!me) return;
    const left = lastTouch + idleMs - Date.now();
    if (left > 0) { idleTimer = setTimeout(checkIdle, left + 500); return; }
    signedOut(t('signedOutIdle'));
  }

  function say(text, kind) {
    const m = $('message');
    m.textContent = text;
    m.className = kind || 'info';
    m.hidden = !text;
  }

  // ---- keypad ----
  function keypad(div, fields) {
    let target = fields[0];
    fields.forEach((f) => f.addEventListener('focus', () => { target = f; }));
    ['1', '2', '3', '4', '5', '6', '7', '8', '9', 'clear', '0', 'back'].forEach((k) => {
      const b = document.createElement('button');
      b.type = 'button'; b.dataset.key = k; b.textContent = k;
      b.addEventListener('click', () => {
        if (k === 'back') target.value = target.value.slice(0, -1);
        else if (k === 'clear') target.value = '';
        else target.value += k;
        target.focus();
      });
      div.appendChild(b);
    });
  }
  keypad(document.querySelector('.keypad[data-for=signin]'), [$('signin-id'), $('signin-pin')]);
  keypad(document.querySelector('.keypad[data-for=supervisor]'), [$('supervisor-id'), $('supervisor-pin')]);

  // ---- sign-in ----
  function showSignIn(msg) {
    $('app').hidden = true;
    $('who').hidden = true;
    $('signin').hidden = false;
    $('signin-pin').value = '';
    const err = $('signin-error');
    err.textContent = msg || ''; err.hidden = !msg;
    $('signin-id').focus();
  }
  function started(info) {
    me = info.cashier; csrf = info.csrf; idleMs = info.idle_seconds * 1000;
    $('signin').hidden = true;
    $('app').hidden = false;
    $('who').hidden = false;
    $('who-name').textContent = me.name + ' (' + me.id + ')';
    say('');
    touched();
    loadStatus();
    startStream();
    window.posagentReady = true;
  }
  function signedOut(msg) {
    me = null; csrf = '';
    clearTimeout(idleTimer);
    if (streamCtl) { streamCtl.abort(); streamCtl = null; }
    clearMember();
    say('');
    showSignIn(msg);
  }
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = $('signin-id').value.trim(), pin = $('signin-pin').value;
    if (!id || !pin) { showSignIn(t('enterIdPin')); return; }
    try {
      started(await call('POST', '/v1/session', { cashier: id, pin }));
    } catch (e) {
      showSignIn(e.message);
      $('signin-id').value = id;
      $('signin-pin').focus();
    }
  });
  $('signout').addEventListener('click', async () => {
    try { await call('DELETE', '/v1/session'); } catch (e) { /* signed out either way */ }
    signedOut(t('signedOut'));
  });

  // ---- supervisor approval ----
  function approveAndSend(why, method, path, body) {
    return new Promise((resolve, reject) => {
      const dlg = $('supervisor');
      $('supervisor-why').textContent = why;
      $('supervisor-id').value = ''; $('supervisor-pin').value = '';
      $('supervisor-error').hidden = true;
      dlg.hidden = false;
      $('supervisor-id').focus();
      const done = () => { dlg.hidden = true; $('supervisor-form').onsubmit = null; $('supervisor-cancel').onclick = null; };
      $('supervisor-cancel').onclick = () => {
        done();
        const e = new Error(why); e.code = 'supervisor_required'; reject(e);
      };
      $('supervisor-form').onsubmit = async (ev) => {
        ev.preventDefault();
        const hdr = { 'X-Supervisor-Id': $('supervisor-id').value.trim(), 'X-Supervisor-Pin': $('supervisor-pin').value };
        try {
          const data = await call(method, path, body, hdr);
          done(); resolve(data);
        } catch (e) {
          if (e.status === 401) { done(); signedOut(t('signedOutIdle')); reject(e); return; }
          if (['wrong_pin', 'not_supervisor', 'unknown_cashier', 'cashier_locked', 'cashier_disabled'].includes(e.code)) {
            $('supervisor-pin').value = '';
            $('supervisor-error').textContent = e.message; $('supervisor-error').hidden = false;
            return;
          }
          done(); reject(e);
        }
      };
    });
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

  // ---- top-up and void ----
  $('topup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!current) { say(t('selectMember'), 'warn'); return; }
    const fen = toFen($('topup-amount').value);
    if (!fen) { say(t('amount') + '?', 'error'); return; }
    const body = { topup_id: newId('web-topup-'), member_id: current.member.id, amount: fen };
    if (till) body.till = till;
    try {
      await api('POST', '/v1/topups', body);
      showMember(await api('GET', '/v1/members/' + encodeURIComponent(current.member.id)));
      say(t('toppedUp') + ': ' + yuan(fen), 'ok');
      $('topup-amount').value = '';
    } catch (e) {
      say(e.message, 'error');
    }
  });
  $('void-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const receipt = $('void-receipt').value.trim();
    if (!receipt) return;
    const body = { receipt_id: receipt };
    const reason = $('void-reason').value.trim(); if (reason) body.reason = reason;
    if (till) body.till = till;
    try {
      await api('POST', '/v1/voids', body);
      say(t('voided') + ': ' + receipt, 'ok');
      $('void-form').reset();
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
    // A standalone till (no HQ configured) uploads nothing: its entries are
    // not waiting for anything, so there is no link to show, let alone a
    // red one.
    el.hidden = !sy.configured;
    if (!sy.configured) { el.textContent = ''; return; }
    el.textContent = (sy.online ? t('syncOk') : t('offline')) + (sy.backlog ? ' · ' + sy.backlog + ' ' + t('syncBehind') : '');
    el.className = sy.online ? 'on' : 'off';
  }
  async function loadStatus() {
    try { status = await api('GET', '/v1/status'); renderStatus(); } catch (e) { /* shown on next event */ }
  }

  // ---- event stream: fetch-based SSE, ended at sign-out ----
  let lastId = '';
  let backoff = 500;
  function startStream() {
    if (streamCtl) streamCtl.abort();
    streamCtl = new AbortController();
    stream(streamCtl.signal);
  }
  async function stream(signal) {
    const url = '/v1/events' + (till ? '?till=' + encodeURIComponent(till) : '');
    while (!signal.aborted) {
      const headers = {};
      if (lastId) headers['Last-Event-ID'] = lastId;
      let resumeNow = false;
      try {
        const res = await fetch(url, { headers, cache: 'no-store', credentials: 'same-origin', signal });
        if (res.status === 401) { $('stream').className = 'dot off'; if (me) signedOut(t('signedOutIdle')); return; }
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
      case 'member_code_expired':
      case 'member_code_foreign':
      case 'member_code_repeat':
        // A member code refused: the agent says why, in both languages.
        say((lang === 'zh' ? d.message_zh : d.message) || d.message || t('readError'), ev.type === 'member_code_expired' ? 'warn' : 'error');
        break;
      case 'payment_code_read':
        // A customer's payment code, not a member: the page never gets
        // the digits, only where the payment goes on.
        say((lang === 'zh' ? d.message_zh : d.message) || t('paymentCode'), 'warn');
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

  applyLang();
  // A reload keeps the cookie: ask the agent whether it is still signed in.
  call('GET', '/v1/session').then(started, () => { showSignIn(''); window.posagentReady = true; });
})();
