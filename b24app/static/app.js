/* b24app pages: fit the Bitrix24 frame, draw the trend chart, show user names. No framework. */
(function () {
  'use strict';
  var $b24 = null;

  function fit() {
    if (!$b24) { return; }
    try { $b24.parent.fitWindow(); } catch (e) { /* not framed any more */ }
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  function drawChart() {
    var source = document.getElementById('chart-data');
    var canvas = document.getElementById('trend-chart');
    if (!source || !canvas || !window.Chart) { return; }
    var data = JSON.parse(source.textContent);
    var colours = {leads: '#2fc6f6', bookings: '#9dcf00', confirmed: '#55d0a6', no_shows: '#ff5752'};
    var datasets = data.series.map(function (s) {
      var bar = s.key === 'leads';
      return {
        type: bar ? 'bar' : 'line', label: s.label, data: s.data,
        backgroundColor: bar ? 'rgba(47,198,246,.35)' : colours[s.key],
        borderColor: colours[s.key], borderWidth: bar ? 0 : 2, pointRadius: data.labels.length > 40 ? 0 : 2,
        tension: 0.25, order: bar ? 2 : 1
      };
    });
    new window.Chart(canvas, {
      type: 'bar',
      data: {labels: data.labels, datasets: datasets},
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: {mode: 'index', intersect: false},
        plugins: {legend: {position: 'bottom', labels: {boxWidth: 12, font: {size: 12}}}},
        scales: {y: {beginAtZero: true, ticks: {precision: 0}}, x: {ticks: {maxRotation: 0, autoSkip: true}}}
      }
    });
    canvas.setAttribute('data-drawn', '1');
  }

  function showUserNames() {
    var nodes = document.querySelectorAll('[data-user-id]');
    if (!$b24 || !nodes.length) { return; }
    var ids = [];
    nodes.forEach(function (n) { var id = n.getAttribute('data-user-id'); if (ids.indexOf(id) < 0) { ids.push(id); } });
    try {
      $b24.actions.v2.call.make({method: 'user.get', params: {FILTER: {ID: ids}}}).then(function (res) {
        if (!res || !res.isSuccess) { return; }
        var users = (res.getData() || {}).result || [];
        var names = {};
        users.forEach(function (u) { names[String(u.ID)] = [u.NAME, u.LAST_NAME].filter(Boolean).join(' '); });
        nodes.forEach(function (n) {
          var name = names[n.getAttribute('data-user-id')];
          if (name) { n.textContent = name; }
        });
        fit();
      }).catch(function () { /* names are a nicety; IDs stay */ });
    } catch (e) { /* older SDK */ }
  }

  function togglePeriodDates() {
    var select = document.getElementById('period-select');
    var dates = document.querySelector('.custom-dates');
    if (!select || !dates) { return; }
    var update = function () { dates.style.display = select.value === 'custom' ? '' : 'none'; };
    select.addEventListener('change', update);
    update();
  }

  drawChart();
  togglePeriodDates();

  var framed = window.top !== window.self;
  if (framed && window.B24Js && window.B24Js.initializeB24Frame) {
    // No answer from the parent in 5 s: shown as standalone meanwhile; a late answer (a busy
    // browser, a slow portal page) still makes the page ready and fits the frame.
    var waiting = setTimeout(function () {
      document.documentElement.setAttribute('data-b24', 'standalone');
    }, 5000);
    window.B24Js.initializeB24Frame().then(function (b24) {
      clearTimeout(waiting);
      $b24 = b24;
      document.documentElement.setAttribute('data-b24', 'ready');
      fit();
      showUserNames();
      window.addEventListener('resize', debounce(fit, 150));
    }).catch(function () {
      clearTimeout(waiting);
      document.documentElement.setAttribute('data-b24', 'standalone');
    });
  } else {
    document.documentElement.setAttribute('data-b24', 'standalone');
  }
})();
