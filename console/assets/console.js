// Auto-refresh, off by default; the console works without this script.
(function () {
  var secs = parseInt(document.body.dataset.refresh || "0", 10);
  var box = document.getElementById("autorefresh");
  if (!secs || !box) return;
  box.parentElement.hidden = false;
  box.checked = localStorage.getItem("jpkica-console-refresh") === "on";
  var timer = null;
  function arm() {
    clearTimeout(timer);
    if (box.checked) timer = setTimeout(function () { location.reload(); }, secs * 1000);
  }
  box.addEventListener("change", function () {
    localStorage.setItem("jpkica-console-refresh", box.checked ? "on" : "off");
    arm();
  });
  arm();
})();
