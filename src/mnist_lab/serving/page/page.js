// The draw-a-digit page: each stroke or photo is sent to POST /predict; the answer is drawn as
// the digit, ten probability bars and the 28x28 image the network saw.
const canvas = document.getElementById("canvas");
const pen = canvas.getContext("2d");
const PEN_WIDTH = 18; // px on the 280 px canvas: MNIST's stroke, scaled

function clearCanvas() {
  asked++; // an answer still on its way is for the drawing just cleared
  document.getElementById("digit").classList.remove("reading");
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  document.getElementById("digit").textContent = "?";
  showError(null);
  drawBars(null);
  drawSeen(null);
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
}

canvas.addEventListener("pointerdown", (event) => {
  canvas.setPointerCapture(event.pointerId);
  pen.lineWidth = PEN_WIDTH;
  pen.lineCap = pen.lineJoin = "round";
  pen.strokeStyle = "#000";
  pen.beginPath();
  pen.moveTo(...point(event));
  pen.lineTo(...point(event)); // a tap leaves a dot
  pen.stroke();
});
canvas.addEventListener("pointermove", (event) => {
  if (!canvas.hasPointerCapture(event.pointerId)) return;
  pen.lineTo(...point(event));
  pen.stroke();
});
canvas.addEventListener("pointerup", () => {
  document.getElementById("digit").classList.add("reading"); // now: toBlob answers later
  canvas.toBlob((png) => send(png, "canvas.png"), "image/png");
});
document.getElementById("clear").addEventListener("click", clearCanvas);
document.getElementById("photo").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) send(file, file.name);
  event.target.value = ""; // the same file chosen again is sent again
});

let asked = 0; // answers can arrive out of order: only the latest request's is shown

async function send(image, name) {
  const mine = ++asked;
  document.getElementById("digit").classList.add("reading");
  const form = new FormData();
  form.append("images", image, name);
  let answer;
  try {
    const response = await fetch("predict", { method: "POST", body: form });
    answer = await response.json();
  } catch (err) {
    answer = { error: `the server did not answer (${err.message})` };
  }
  if (mine !== asked) return;
  document.getElementById("digit").classList.remove("reading");
  const [reading] = answer.results || [];
  if (answer.error || !reading || reading.error) {
    document.getElementById("digit").textContent = "?";
    showError(answer.error || reading.error);
    drawBars(null);
    drawSeen(null);
    return;
  }
  showError(null);
  document.getElementById("digit").textContent = reading.class;
  drawBars(reading.probabilities);
  drawSeen(reading.seen);
}

function showError(message) {
  const box = document.getElementById("error");
  box.hidden = !message;
  box.textContent = message || "";
}

let classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]; // the model's, from GET /model

function drawBars(probabilities) {
  const list = document.getElementById("bars");
  list.replaceChildren();
  const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  classes.forEach((name, label) => {
    const p = probabilities ? probabilities[label] : 0;
    const row = document.createElement("li");
    row.className = label === best ? "top" : "";
    row.dataset.digit = label;
    row.innerHTML = `<span>${name}</span><span class="bar" style="width:${(100 * p).toFixed(1)}%"></span>` +
      `<span>${probabilities ? (100 * p).toFixed(1) + " %" : ""}</span>`;
    list.append(row);
  });
}

function drawSeen(png) {
  const view = document.getElementById("seen").getContext("2d");
  view.fillStyle = "black";
  view.fillRect(0, 0, 28, 28);
  if (!png) return;
  const image = new Image();
  image.onload = () => view.drawImage(image, 0, 0);
  image.src = png;
}

fetch("model").then((r) => r.json()).then((m) => {
  classes = m.classes;
  drawBars(null);
  const accuracy = m.test_acc == null ? "" : `, ${(100 * m.test_acc).toFixed(2)} % on its test set`;
  const line = document.getElementById("model");
  line.textContent = `${m.network}, ${m.parameters.toLocaleString("en")} parameters${accuracy}, on ${m.backend}; ` +
    m.checkpoint.split("/").pop();
  line.title = `${m.checkpoint}\ntrained with ${m.trained_with}`;
});
clearCanvas();
