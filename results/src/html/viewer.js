(function () {
  "use strict";
  var current = null;
  var hint = document.getElementById("hint");
  function select(box) {
    if (current) {
      current.classList.remove("sel");
      current.setAttribute("aria-pressed", "false");
      var old = document.getElementById(current.getAttribute("data-detail"));
      if (old) { old.hidden = true; }
    }
    current = box;
    box.classList.add("sel");
    box.setAttribute("aria-pressed", "true");
    var detail = document.getElementById(box.getAttribute("data-detail"));
    if (detail) { detail.hidden = false; }
    if (hint) { hint.hidden = true; }
  }
  var boxes = document.querySelectorAll("g.blk");
  Array.prototype.forEach.call(boxes, function (box) {
    box.addEventListener("click", function () { select(box); });
    box.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(box); }
    });
  });
  function fromHash() {
    var box = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (box && box.classList.contains("blk")) { select(box); }
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
